// The canonical text dump: deterministic, complete enough for explain and test failures.
#include <gtest/gtest.h>

#include <cmath>

#include "programs.h"

namespace terra::graph {
namespace {

using testing::meta;
using testing::training_step;
using testing::with_lr;
using testing::with_tanh;

TraceGraph branched() {
  TraceGraph graph;
  graph.merge(training_step(with_lr(0.1)));
  graph.merge(training_step(with_tanh()));
  graph.merge(training_step(with_lr(0.05)));
  return graph;
}

TEST(Printer, SameGraphPrintsTheSameText) {
  TraceGraph a = branched();
  TraceGraph b = branched();
  a.verify();
  EXPECT_EQ(print(a), print(b));
  EXPECT_EQ(print(a), print(TraceGraph(a)));
}

TEST(Printer, DifferentGraphsPrintDifferently) {
  TraceGraph a = branched();
  TraceGraph b = branched();
  b.merge(training_step());
  b.verify();
  EXPECT_NE(print(a), print(b));  // counts changed
}

TEST(Printer, ShowsNodesBranchesFeedsAndTables) {
  TraceGraph graph = branched();
  graph.verify();
  const std::string text = print(graph);
  EXPECT_NE(text.find("TraceGraph: 9 nodes, 1 branch points, 3 iterations"), std::string::npos)
      << text;
  EXPECT_NE(text.find("#0 s0 aten::mm(feed:0, state:1) -> float32[8,4]"), std::string::npos)
      << text;
  EXPECT_NE(text.find("branch at #0: #1 x2 | #5 x1 (last 0)"), std::string::npos) << text;
  EXPECT_NE(text.find("aten::mul(state:1, feed:double)"), std::string::npos) << text;
  EXPECT_NE(text.find("aten::sum(%1.0) -> float32[] fetch"), std::string::npos) << text;
  EXPECT_NE(text.find("[model/linear]"), std::string::npos) << text;
  EXPECT_NE(text.find("state:1 float32[4,4]"), std::string::npos) << text;
  EXPECT_NE(text.find("feed:0 float32[8,4]"), std::string::npos) << text;
  // Subtrees of a branch are indented under it.
  EXPECT_NE(text.find("\n  #5 s1 aten::tanh"), std::string::npos) << text;
}

TEST(Printer, ArgsAndMetasHaveCanonicalForms) {
  EXPECT_EQ(to_string(Arg()), "None");
  EXPECT_EQ(to_string(Arg(true)), "true");
  EXPECT_EQ(to_string(Arg(std::int64_t{-3})), "-3");
  EXPECT_EQ(to_string(Arg(0.1)), "0.1");
  EXPECT_EQ(to_string(Arg(2.0)), "2.0");
  EXPECT_EQ(to_string(Arg(-INFINITY)), "-inf");
  EXPECT_EQ(to_string(Arg("mean")), "\"mean\"");
  EXPECT_EQ(to_string(Arg(IntList{2, -1})), "[2,-1]");
  EXPECT_EQ(to_string(Arg(ScalarFeed{ScalarKind::kInt})), "feed:int");
  EXPECT_EQ(to_string(Arg(OtherArg{"memory_format:contiguous"})),
            "other(memory_format:contiguous)");
  EXPECT_EQ(to_string(Arg(TensorListArg{{0, TensorListArg::kNoTensor}})), "[$0,None]");
  EXPECT_EQ(to_string(InputRef(NodeOutput{3, 1})), "%3.1");
  EXPECT_EQ(to_string(InputRef(Constant{2})), "const:2");
  TensorMeta strided = meta({2, 3});
  strided.strides = {1, 2};
  strided.storage_offset = 4;
  strided.device = "cuda:0";
  strided.requires_grad = true;
  EXPECT_EQ(to_string(strided), "float32[2,3] s=[1,2] +4 @cuda:0 grad");
  // Doubles print with enough digits to read back exactly.
  const double third = 1.0 / 3.0;
  EXPECT_EQ(std::stod(to_string(Arg(third))), third);
}

TEST(Printer, RecordShowsOutputsSourceAndModule) {
  Trace trace = training_step();
  const std::string text = to_string(trace.records[0]);
  EXPECT_EQ(text, "aten::mm(feed:0, state:1) -> float32[8,4] @train.py:10 [model/linear]");
}

}  // namespace
}  // namespace terra::graph
