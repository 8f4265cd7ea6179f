// Warnings raised by kernels (TORCH_WARN) reach the thread that issued the op, as in eager
// (coexec/src/op_warnings.h): at the op when it warned while traced, at the next op when only
// the runner met it, and from then on at the op.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/library.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "fresh_engine.h"
#include "terra/coexec/engine.h"

namespace {

using terra::coexec::Engine;
using terra::coexec::testing::fresh_engine;

// A kernel whose warning depends on its input's values. Defined in the aten namespace: the
// engine runs ops of other namespaces at once (op_table.cpp), while this one must be queued.
at::Tensor doubled_warning_if_positive(const at::Tensor& x) {
  const at::Tensor contiguous = x.contiguous();
  if (contiguous.data_ptr<float>()[0] > 0) TORCH_WARN("terra test: a positive first element");
  return x * 2;
}

TORCH_LIBRARY_FRAGMENT(aten, m) {
  m.def("_terra_test_doubled_warning_if_positive(Tensor x) -> Tensor");
}
TORCH_LIBRARY_IMPL(aten, CPU, m) {
  m.impl("_terra_test_doubled_warning_if_positive", &doubled_warning_if_positive);
}

at::Tensor call_op(const at::Tensor& x) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("aten::_terra_test_doubled_warning_if_positive", "")
                             .typed<at::Tensor(const at::Tensor&)>();
  return op.call(x);
}

// Stands in for torch's Python handler: keeps the warnings raised on this thread.
class Collected : public c10::WarningHandler {
 public:
  void process(const c10::Warning& warning) override { messages.push_back(warning.msg()); }
  std::vector<std::string> messages;
};

// One iteration: a queued op before and after the warning one, so that it is co-executed
// among others. Returns the warnings seen right after the op returned.
std::size_t iteration_warnings_at_the_op(Engine& engine, int region, const at::Tensor& x,
                                         const Collected& collected) {
  engine.begin_iteration(region);
  const std::size_t before = collected.messages.size();
  at::Tensor y = call_op(x + 1);
  const std::size_t at_op = collected.messages.size() - before;
  at::Tensor z = y * 3;
  engine.end_iteration();
  return at_op;
}

TEST(OpWarnings, AnOpThatWarnedWhileTracedWarnsAtTheOpWhenCoexecuted) {
  Engine& engine = fresh_engine();
  Collected collected;
  c10::WarningUtils::WarningHandlerGuard guard(&collected);
  const int region = engine.region("test:warns", "warns", "test.cpp", 1);
  const at::Tensor positive = at::ones({4});
  constexpr int kIterations = 8;
  for (int i = 0; i < kIterations; ++i) {
    EXPECT_EQ(iteration_warnings_at_the_op(engine, region, positive, collected), 1u)
        << "iteration " << i;
  }
  engine.sync();
  EXPECT_EQ(collected.messages.size(), static_cast<std::size_t>(kIterations));
  EXPECT_NE(collected.messages.front().find("a positive first element"), std::string::npos);
  const auto stats = engine.stats();
  EXPECT_GE(stats.total.iterations_coexecuted, 4u);
  EXPECT_NE(engine.graph_json(region).find("\"warns\":true"), std::string::npos);
}

TEST(OpWarnings, AWarningOnlyTheRunnerMetIsReissuedAndItsNodeRunsAtTheOpAfter) {
  Engine& engine = fresh_engine();
  Collected collected;
  c10::WarningUtils::WarningHandlerGuard guard(&collected);
  const int region = engine.region("test:runner-warns", "runner-warns", "test.cpp", 2);
  const at::Tensor negative = at::full({4}, -5.0);  // x + 1 < 0: no warning
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(iteration_warnings_at_the_op(engine, region, negative, collected), 0u);
  }
  ASSERT_EQ(engine.phase(region), terra::coexec::Phase::kCoexecuting);
  EXPECT_EQ(engine.graph_json(region).find("\"warns\":true"), std::string::npos);

  // Queued: the runner raises it; the engine hands it to this thread's handler at the next
  // op or sync, not to stderr.
  const at::Tensor positive = at::ones({4});
  EXPECT_EQ(iteration_warnings_at_the_op(engine, region, positive, collected), 0u);
  engine.sync();
  ASSERT_EQ(collected.messages.size(), 1u);
  EXPECT_NE(collected.messages.front().find("a positive first element"), std::string::npos);
  EXPECT_NE(engine.graph_json(region).find("\"warns\":true"), std::string::npos);

  // Marked: from now on it runs on this thread, and its warning comes at the op.
  EXPECT_EQ(iteration_warnings_at_the_op(engine, region, positive, collected), 1u);
  EXPECT_EQ(iteration_warnings_at_the_op(engine, region, negative, collected), 0u);
  engine.sync();
  EXPECT_EQ(collected.messages.size(), 2u);
  EXPECT_EQ(engine.phase(region), terra::coexec::Phase::kCoexecuting);
}

}  // namespace
