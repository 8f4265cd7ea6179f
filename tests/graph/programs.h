// Test programs: small "training steps" written with TraceBuilder, each a function of what
// varies between iterations (learning rate, batch size, which branch an `if` takes).
#pragma once

#include "trace_builder.h"

namespace terra::graph::testing {

struct StepOptions {
  double lr = 0.1;
  std::int64_t batch = 8;
  bool take_tanh = false;  // the program's `if` on a fetched value went the other way
};

inline StepOptions with_lr(double lr) {
  StepOptions options;
  options.lr = lr;
  return options;
}
inline StepOptions with_batch(std::int64_t batch) {
  StepOptions options;
  options.batch = batch;
  return options;
}
inline StepOptions with_tanh() {
  StepOptions options;
  options.take_tanh = true;
  return options;
}

// y = relu|tanh(x @ w); loss = sum(y) (fetched: Python prints it); w.sub_(w * lr).
// Steps: 0 mm, 1 relu/tanh, 2 sum, 3 mul, 4 sub_.
inline Trace training_step(const StepOptions& options = {}) {
  TraceBuilder b;
  Value x = b.feed(0, meta({options.batch, 4}));
  Value w = b.state(1, meta({4, 4}));
  b.set_module("model/linear");
  Value y = b.op("aten::mm", {x, w}, {}, meta({options.batch, 4}));
  b.set_module("model/act");
  Value h = b.op(options.take_tanh ? "aten::tanh" : "aten::relu", {y});
  b.set_module("");
  b.op("aten::sum", {h}, {}, meta({}));
  b.fetch_last();
  Value update = b.op("aten::mul", {w}, {Arg(options.lr)});
  b.op("aten::sub_", {w, update}, {Arg(std::int64_t{1})});
  return b.take();
}

}  // namespace terra::graph::testing
