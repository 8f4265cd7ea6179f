// The generic executor with plain numbers: results equal a direct computation, values are
// freed after their last use, scalar feeds are fed, errors are reported.
#include <gtest/gtest.h>

#include <map>
#include <memory>

#include "programs.h"

namespace terra::graph {
namespace {

using testing::meta;
using testing::TraceBuilder;
using testing::Value;

// Values are shared doubles so that the test can watch them die (weak_ptr expiry).
using Number = std::shared_ptr<double>;

Number number(double v) { return std::make_shared<double>(v); }

double scalar_of(const Arg& arg) {
  return arg.is<double>() ? arg.as<double>() : static_cast<double>(arg.as<std::int64_t>());
}

// Per-op behaviour on scalars standing in for tensors (STYLE §7: a table keyed by op).
OpTable<Number> number_ops() {
  OpTable<Number> table;
  table.add("aten::mm", [](KernelCall<Number>& c) {
    return std::vector<Number>{number(*c.inputs[0] * *c.inputs[1])};
  });
  table.add("aten::relu", [](KernelCall<Number>& c) {
    return std::vector<Number>{number(*c.inputs[0] > 0 ? *c.inputs[0] : 0.0)};
  });
  table.add("aten::add", [](KernelCall<Number>& c) {  // add(a, b, alpha)
    return std::vector<Number>{number(*c.inputs[0] + scalar_of(c.args[2]) * *c.inputs[1])};
  });
  table.add("aten::mul", [](KernelCall<Number>& c) {  // mul(a, scalar)
    return std::vector<Number>{number(*c.inputs[0] * scalar_of(c.args[1]))};
  });
  table.add("aten::neg",
            [](KernelCall<Number>& c) { return std::vector<Number>{number(-*c.inputs[0])}; });
  return table;
}

// States, feeds and scalar feeds of one iteration.
class Inputs : public ValueSource<Number> {
 public:
  std::map<std::int64_t, Number> states, feeds;
  std::map<std::uint32_t, Number> outside;  // NodeOutputs from before a partial plan
  double lr = 0.0;
  int scalar_requests = 0;

  Number input(const InputRef& ref) override {
    if (const auto* s = std::get_if<State>(&ref)) return states.at(s->id);
    if (const auto* f = std::get_if<Feed>(&ref)) return feeds.at(f->index);
    if (const auto* o = std::get_if<NodeOutput>(&ref)) return outside.at(o->step);
    throw ExecutionError("no such input");
  }
  Arg scalar(const Node&, std::size_t) override {
    ++scalar_requests;
    return Arg(lr);
  }
};

// a = x @ w; b = relu(a); c = a + 2 * b; d = c * lr; e = neg(d)
Trace program(double lr) {
  TraceBuilder t;
  Value x = t.feed(0, meta({}));
  Value w = t.state(1, meta({}));
  Value a = t.op("aten::mm", {x, w});
  Value b = t.op("aten::relu", {a});
  Value c = t.op("aten::add", {a, b}, {Arg(std::int64_t{2})});
  Value d = t.op("aten::mul", {c}, {Arg(lr)});
  t.op("aten::neg", {d});
  return t.take();
}

double eager(double x, double w, double lr) {
  double a = x * w;
  double b = a > 0 ? a : 0.0;
  double c = a + 2 * b;
  return -(c * lr);
}

struct Fixture {
  TraceGraph graph;
  MergeResult merged;
  Inputs inputs;
  OpTable<Number> ops = number_ops();

  explicit Fixture(double lr = 0.5) {
    merged = graph.merge(program(lr));
    graph.verify();
    inputs.states[1] = number(3.0);
    inputs.feeds[0] = number(1.5);
    inputs.lr = lr;
  }
};

TEST(Executor, ResultEqualsTheDirectComputation) {
  Fixture f;
  ExecutionPlan plan = ExecutionPlan::build(f.graph, f.merged.path, {NodeOutput{4, 0}});
  Execution<Number> run(plan, f.ops, f.inputs);
  run.run();
  ASSERT_TRUE(run.done());
  const Number* result = run.value(NodeOutput{4, 0});
  ASSERT_NE(result, nullptr);
  EXPECT_EQ(**result, eager(1.5, 3.0, 0.5));
  EXPECT_EQ(run.live_values(), 1u);  // only the kept result
}

TEST(Executor, FreesEachValueAfterItsLastUse) {
  Fixture f;
  ExecutionPlan plan = ExecutionPlan::build(f.graph, f.merged.path);
  Execution<Number> run(plan, f.ops, f.inputs);
  std::vector<std::weak_ptr<double>> produced;  // by step
  run.set_observer(
      [&](const Node&, const std::vector<Number>& outputs) { produced.push_back(outputs[0]); });
  // Live after each step: a | a,b | c (a, b die at add) | d (c dies) | - (e unused).
  const std::vector<std::size_t> live_after = {1, 2, 1, 1, 0};
  const std::vector<std::vector<bool>> alive_after = {{true},
                                                      {true, true},
                                                      {false, false, true},
                                                      {false, false, false, true},
                                                      {false, false, false, false, false}};
  for (std::size_t step = 0; step < plan.size(); ++step) {
    run.step();
    EXPECT_EQ(run.live_values(), live_after[step]) << "after step " << step;
    for (std::size_t i = 0; i <= step; ++i) {
      EXPECT_EQ(!produced[i].expired(), alive_after[step][i]) << "value " << i << " after " << step;
    }
  }
  EXPECT_EQ(run.peak_live_values(), 3u);  // a, b and c while add runs
  EXPECT_THROW(run.step(), ExecutionError);
  EXPECT_EQ(run.value(NodeOutput{0, 0}), nullptr);
}

TEST(Executor, ScalarFeedsAreAskedForEachIteration) {
  Fixture f(0.5);
  MergeResult second = f.graph.merge(program(0.25));  // lr varies: a ScalarFeed now
  ASSERT_EQ(second.generalised.size(), 1u);
  f.graph.verify();
  ExecutionPlan plan = ExecutionPlan::build(f.graph, second.path, {NodeOutput{4, 0}});
  for (double lr : {0.25, 0.125}) {
    f.inputs.lr = lr;
    Execution<Number> run(plan, f.ops, f.inputs);
    run.run();
    EXPECT_EQ(**run.value(NodeOutput{4, 0}), eager(1.5, 3.0, lr));
  }
  EXPECT_EQ(f.inputs.scalar_requests, 2);  // once per run, only for the fed argument
}

TEST(Executor, RunsStepByStepAndPartialPlansReadOutsideValues) {
  Fixture f;
  std::vector<NodeId> tail(f.merged.path.begin() + 2, f.merged.path.end());  // add, mul, neg
  ExecutionPlan plan = ExecutionPlan::build(f.graph, tail, {NodeOutput{2, 0}, NodeOutput{4, 0}});
  EXPECT_EQ(plan.step(0).inputs[0].slot, PlannedInput::kExternal);
  f.inputs.outside[0] = number(4.5);  // a
  f.inputs.outside[1] = number(4.5);  // b
  Execution<Number> run(plan, f.ops, f.inputs);
  run.run(1);
  EXPECT_EQ(run.next(), 1u);
  ASSERT_NE(run.value(NodeOutput{2, 0}), nullptr);
  EXPECT_EQ(**run.value(NodeOutput{2, 0}), 4.5 + 2 * 4.5);
  run.run();
  EXPECT_EQ(**run.value(NodeOutput{4, 0}), -((4.5 + 2 * 4.5) * 0.5));
  EXPECT_EQ(run.live_values(), 2u);  // the two kept values
}

TEST(Executor, UnknownOperatorIsReportedBeforeRunning) {
  Fixture f;
  OpTable<Number> partial;
  partial.add("aten::mm", [](KernelCall<Number>& c) { return std::vector<Number>{c.inputs[0]}; });
  ExecutionPlan plan = ExecutionPlan::build(f.graph, f.merged.path);
  EXPECT_THROW((Execution<Number>(plan, partial, f.inputs)), ExecutionError);
}

TEST(Executor, OverloadSpecificKernelWinsOverTheBareName) {
  OpTable<Number> table;
  table.add("aten::add", [](KernelCall<Number>&) { return std::vector<Number>{number(1)}; });
  table.add("aten::add.Tensor", [](KernelCall<Number>&) { return std::vector<Number>{number(2)}; });
  std::vector<Number> none;
  std::vector<Arg> args;
  Node node;
  KernelCall<Number> call{node, args, none};
  EXPECT_EQ(*(*table.find(OperatorName("aten::add", "Tensor")))(call)[0], 2.0);
  EXPECT_EQ(*(*table.find(OperatorName("aten::add", "Scalar")))(call)[0], 1.0);
  EXPECT_EQ(table.find(OperatorName("aten::sub")), nullptr);
}

TEST(Executor, KernelReturningTheWrongNumberOfOutputsFails) {
  Fixture f;
  OpTable<Number> table = number_ops();
  table.add("aten::mm", [](KernelCall<Number>&) { return std::vector<Number>{}; });
  ExecutionPlan plan = ExecutionPlan::build(f.graph, f.merged.path);
  Execution<Number> run(plan, table, f.inputs);
  EXPECT_THROW(run.step(), ExecutionError);
}

TEST(Executor, PlanRejectsASequenceThatIsNotAPath) {
  Fixture f;
  std::vector<NodeId> gap = {f.merged.path[0], f.merged.path[2]};
  EXPECT_THROW(ExecutionPlan::build(f.graph, gap), ExecutionError);
  EXPECT_THROW(ExecutionPlan::build(f.graph, {99}), ExecutionError);
  EXPECT_EQ(ExecutionPlan::build(f.graph, {}).size(), 0u);
}

}  // namespace
}  // namespace terra::graph
