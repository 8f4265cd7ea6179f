// Test helper: writes Traces the way a small program would issue ops, so tests read like
// the program they stand for. Tensor arguments come first in each op's args.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "terra/graph/graph.h"

namespace terra::graph::testing {

inline TensorMeta meta(std::vector<std::int64_t> sizes, std::string dtype = "float32") {
  return TensorMeta::contiguous(std::move(sizes), std::move(dtype));
}

// A tensor value of the test program: where it came from and its metadata.
struct Value {
  InputRef ref;
  TensorMeta meta;
};

class TraceBuilder {
 public:
  Value feed(std::int64_t index, TensorMeta m) { return {Feed{index}, std::move(m)}; }
  Value state(std::int64_t id, TensorMeta m) { return {State{id}, std::move(m)}; }
  Value constant(std::int64_t id, TensorMeta m) { return {Constant{id}, std::move(m)}; }

  // Records `name` on `tensors` (as TensorArg slots, first) and `scalars` (after them);
  // one fresh output with `out` (default: the first tensor's metadata). Returns the output.
  Value op(const std::string& name, const std::vector<Value>& tensors,
           std::vector<Arg> scalars = {}, std::optional<TensorMeta> out = std::nullopt) {
    std::vector<Arg> args;
    std::vector<TensorInput> inputs;
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      args.emplace_back(TensorArg{static_cast<std::uint32_t>(i)});
      inputs.push_back({tensors[i].ref, tensors[i].meta});
    }
    for (Arg& scalar : scalars) args.push_back(std::move(scalar));
    OpRecord record;
    record.identity = OpIdentity(OperatorName(name), std::move(args), std::move(inputs));
    TensorMeta output = out ? *out : (tensors.empty() ? meta({}) : tensors[0].meta);
    record.outputs.push_back(OutputInfo::fresh(output));
    record.source = {"train.py", 10 + static_cast<std::int32_t>(trace_.records.size())};
    record.module_path = module_;
    auto step = static_cast<std::uint32_t>(trace_.append(std::move(record)));
    return {NodeOutput{step, 0}, output};
  }
  // Marks the last op as a fetch (Python read its value).
  void fetch_last() { trace_.mark_fetch(trace_.records.size() - 1); }
  void set_module(std::string path) { module_ = std::move(path); }
  const Trace& trace() const { return trace_; }
  Trace take() { return std::move(trace_); }

 private:
  Trace trace_;
  std::string module_;
};

}  // namespace terra::graph::testing
