// Merging traces into a TraceGraph: containment, divergence, re-convergence, scalar
// generalisation, data-dependent outputs, merge_from after a co-executed prefix.
#include <gtest/gtest.h>

#include "programs.h"

namespace terra::graph {
namespace {

using testing::meta;
using testing::StepOptions;
using testing::TraceBuilder;
using testing::training_step;
using testing::Value;
using testing::with_batch;
using testing::with_lr;
using testing::with_tanh;

constexpr std::size_t kStepOps = 5;  // ops in training_step()

TEST(Merge, FirstTraceAddsEveryRecord) {
  TraceGraph graph;
  MergeResult result = graph.merge(training_step());
  graph.verify();
  EXPECT_FALSE(result.contained);
  EXPECT_EQ(result.nodes_added, kStepOps);
  ASSERT_TRUE(result.divergence_step.has_value());
  EXPECT_EQ(*result.divergence_step, 0u);
  EXPECT_EQ(result.divergence_parent, kRootId);
  EXPECT_EQ(graph.size(), kStepOps);
  EXPECT_EQ(result.path.size(), kStepOps);
  EXPECT_EQ(result.last, result.path.back());
  EXPECT_EQ(graph.node(result.last).ends, 1u);
}

TEST(Merge, IdenticalTraceIsContainedWithoutGrowth) {
  TraceGraph graph;
  MergeResult first = graph.merge(training_step());
  MergeResult second = graph.merge(training_step());
  graph.verify();
  EXPECT_TRUE(second.contained);
  EXPECT_EQ(second.nodes_added, 0u);
  EXPECT_FALSE(second.divergence_step.has_value());
  EXPECT_TRUE(second.generalised.empty());
  EXPECT_EQ(second.path, first.path);
  EXPECT_EQ(graph.size(), kStepOps);
  EXPECT_EQ(graph.branch_count(), 0u);
  EXPECT_EQ(graph.root().count, 2u);
  for (NodeId id = 0; id < graph.size(); ++id) EXPECT_EQ(graph.node(id).count, 2u);
}

TEST(Merge, ClearedTraceRefilledMergesLikeAFreshOne) {
  // A recycled iteration clears its trace (keeping capacity) and records the next one in it.
  TraceGraph graph;
  Trace trace = training_step(with_tanh());
  graph.merge(training_step());
  trace.clear();
  EXPECT_TRUE(trace.records.empty());
  EXPECT_TRUE(trace.states.empty() && trace.feeds.empty() && trace.constants.empty());
  const Trace fresh = training_step();
  for (const OpRecord& record : fresh.records) trace.append(record);
  trace.states = fresh.states;
  trace.feeds = fresh.feeds;
  trace.constants = fresh.constants;
  MergeResult again = graph.merge(trace);
  graph.verify();
  EXPECT_TRUE(again.contained);
  EXPECT_EQ(graph.size(), kStepOps);
}

TEST(Merge, DivergenceOpensBranchAtFirstDifference) {
  TraceGraph graph;
  MergeResult relu = graph.merge(training_step());
  MergeResult tanh = graph.merge(training_step(with_tanh()));
  graph.verify();
  EXPECT_FALSE(tanh.contained);
  ASSERT_TRUE(tanh.divergence_step.has_value());
  EXPECT_EQ(*tanh.divergence_step, 1u);             // relu vs tanh
  EXPECT_EQ(tanh.divergence_parent, relu.path[0]);  // after mm
  EXPECT_EQ(tanh.nodes_added, kStepOps - 1);
  EXPECT_EQ(tanh.path[0], relu.path[0]);
  EXPECT_EQ(graph.branch_count(), 1u);

  const Node& mm = graph.node(relu.path[0]);
  ASSERT_EQ(mm.children.size(), 2u);
  EXPECT_EQ(mm.children[0], relu.path[1]);
  EXPECT_EQ(mm.children[1], tanh.path[1]);
  EXPECT_EQ(mm.taken, (std::vector<std::uint64_t>{1, 1}));
  EXPECT_EQ(mm.last_taken, 1);
  EXPECT_EQ(mm.count, 2u);

  MergeResult again = graph.merge(training_step());
  graph.verify();
  EXPECT_TRUE(again.contained);
  EXPECT_EQ(graph.node(relu.path[0]).taken, (std::vector<std::uint64_t>{2, 1}));
  EXPECT_EQ(graph.node(relu.path[0]).last_taken, 0);
}

TEST(Merge, ReconvergingSuffixBecomesItsOwnBranchAndIsThenContained) {
  // Both paths continue with sum, mul, sub_ after the differing activation: the prefix tree
  // keeps a copy of the suffix under each branch (a correct, if unshared, answer).
  TraceGraph graph;
  MergeResult relu = graph.merge(training_step());
  MergeResult tanh = graph.merge(training_step(with_tanh()));
  graph.verify();
  for (std::size_t step = 2; step < kStepOps; ++step) {
    const Node& a = graph.node(relu.path[step]);
    const Node& b = graph.node(tanh.path[step]);
    EXPECT_NE(a.id, b.id);
    EXPECT_EQ(a.step, b.step);
    EXPECT_EQ(a.identity, b.identity) << "suffix op at step " << step;
  }
  EXPECT_TRUE(graph.merge(training_step(with_tanh())).contained);
  EXPECT_TRUE(graph.merge(training_step()).contained);
  EXPECT_EQ(graph.size(), kStepOps + kStepOps - 1);
  graph.verify();
}

TEST(Merge, VaryingLearningRateBecomesOneScalarFeed) {
  TraceGraph graph;
  double lr = 0.1;
  std::vector<MergeResult> results;
  for (int i = 0; i < 6; ++i, lr *= 0.9) results.push_back(graph.merge(training_step(with_lr(lr))));
  graph.verify();
  EXPECT_EQ(graph.size(), kStepOps);
  EXPECT_EQ(graph.branch_count(), 0u);
  EXPECT_FALSE(results[1].contained);
  EXPECT_EQ(results[1].nodes_added, 0u);
  const NodeId mul = results[0].path[3];
  ASSERT_EQ(results[1].generalised.size(), 1u);
  EXPECT_EQ(results[1].generalised[0], (Generalisation{mul, 1}));
  for (std::size_t i = 2; i < results.size(); ++i) {
    EXPECT_TRUE(results[i].contained) << "iteration " << i;
    EXPECT_TRUE(results[i].generalised.empty());
  }
  const Arg& lr_arg = graph.node(mul).identity.args()[1];
  ASSERT_TRUE(lr_arg.is<ScalarFeed>());
  EXPECT_EQ(lr_arg.as<ScalarFeed>().kind, ScalarKind::kDouble);
  EXPECT_TRUE(graph.node(mul).identity.has_scalar_feeds());
  // The int alpha of sub_ never varied: still a concrete value.
  EXPECT_TRUE(graph.node(results[0].path[4]).identity.args()[2].is<std::int64_t>());
}

// x.sum(dim) on a [2, 3] input: the dim shapes the output.
Trace sum_over(std::int64_t dim, std::int64_t rows = 2, std::int64_t cols = 3) {
  TraceBuilder b;
  Value x = b.feed(0, meta({rows, cols}));
  TensorMeta out = meta({dim == 0 ? cols : rows});
  Value s = b.op("aten::sum", {x}, {Arg(IntList{dim}), Arg(false)}, out);
  b.op("aten::neg", {s});
  return b.take();
}

// x.sum(dim) as an int scalar argument (how aten::size/select-like ops take ints).
Trace select_along(std::int64_t dim, std::int64_t index, std::vector<std::int64_t> shape) {
  TraceBuilder b;
  Value x = b.feed(0, meta(shape));
  std::vector<std::int64_t> out_shape = shape;
  out_shape.erase(out_shape.begin() + dim);
  b.op("aten::select_copy", {x}, {Arg(dim), Arg(index)}, meta(out_shape));
  return b.take();
}

TEST(Merge, ShapeChangingIntStaysIdentityAndBranches) {
  TraceGraph graph;
  graph.merge(select_along(0, 0, {2, 3}));
  MergeResult other_dim = graph.merge(select_along(1, 0, {2, 3}));  // output [2] vs [3]
  graph.verify();
  EXPECT_TRUE(other_dim.generalised.empty());
  EXPECT_EQ(other_dim.nodes_added, 1u);
  ASSERT_TRUE(other_dim.divergence_step.has_value());
  EXPECT_EQ(*other_dim.divergence_step, 0u);
  EXPECT_EQ(graph.root().children.size(), 2u);
  EXPECT_EQ(graph.branch_count(), 1u);
  // The index varies without changing the output: generalised, no new branch.
  MergeResult other_index = graph.merge(select_along(0, 1, {2, 3}));
  graph.verify();
  EXPECT_EQ(other_index.nodes_added, 0u);
  ASSERT_EQ(other_index.generalised.size(), 1u);
  EXPECT_EQ(other_index.generalised[0].arg, 2u);
  EXPECT_TRUE(graph.node(other_index.path[0]).identity.args()[2].is<ScalarFeed>());
  EXPECT_TRUE(graph.node(other_index.path[0]).identity.args()[1].is<std::int64_t>());
}

TEST(Merge, IntListArgumentsAreNeverGeneralised) {
  TraceGraph graph;
  graph.merge(sum_over(0, 3, 3));
  MergeResult other = graph.merge(sum_over(1, 3, 3));  // same output shape, other dims
  graph.verify();
  EXPECT_TRUE(other.generalised.empty());
  EXPECT_EQ(other.nodes_added, 2u);
}

TEST(Merge, GeneraliseIntsCanBeTurnedOff) {
  TraceGraph graph;
  MergeOptions no_ints;
  no_ints.generalise_ints = false;
  graph.merge(select_along(0, 0, {2, 3}), no_ints);
  MergeResult other_index = graph.merge(select_along(0, 1, {2, 3}), no_ints);
  graph.verify();
  EXPECT_TRUE(other_index.generalised.empty());
  EXPECT_EQ(other_index.nodes_added, 1u);
}

TEST(Merge, ExactSiblingWinsOverScalarFeed) {
  // index 0 and 1 generalise; a later exact sibling (other dim) keeps matching itself.
  TraceGraph graph;
  graph.merge(select_along(0, 0, {2, 3}));
  graph.merge(select_along(0, 1, {2, 3}));
  MergeResult dim1 = graph.merge(select_along(1, 0, {2, 3}));
  MergeResult dim1_again = graph.merge(select_along(1, 0, {2, 3}));
  graph.verify();
  EXPECT_TRUE(dim1_again.contained);
  EXPECT_EQ(dim1_again.path, dim1.path);
}

// repeat(x, k): an int whose output length is its value times x's.
Trace repeat_by(std::int64_t k, std::int64_t out_length) {
  TraceBuilder b;
  Value x = b.feed(0, meta({1}));
  b.op("aten::foo", {x}, {Arg(k)}, meta({out_length}));
  return b.take();
}

TEST(Merge, GeneralisationThatWouldOverlapASiblingOpensABranchInstead) {
  TraceGraph graph;
  graph.merge(repeat_by(1, 1));
  graph.merge(repeat_by(2, 2));  // other output: a sibling with k=2
  // k=3 happens to give k=1's output; a ScalarFeed there would also accept k=2.
  MergeResult three = graph.merge(repeat_by(3, 1));
  graph.verify();
  EXPECT_TRUE(three.generalised.empty());
  EXPECT_EQ(three.nodes_added, 1u);
  EXPECT_EQ(graph.root().children.size(), 3u);
  // Without the sibling the same record generalises.
  TraceGraph lone;
  lone.merge(repeat_by(1, 1));
  EXPECT_EQ(lone.merge(repeat_by(3, 1)).generalised.size(), 1u);
  lone.verify();
}

TEST(Merge, FedScalarThatChangesOutputsMarksTheNode) {
  TraceGraph graph;
  graph.merge(repeat_by(1, 1));
  graph.merge(repeat_by(3, 1));                     // generalised
  MergeResult four = graph.merge(repeat_by(4, 4));  // accepted, but the output differs
  graph.verify();
  EXPECT_EQ(four.nodes_added, 0u);
  EXPECT_EQ(four.outputs_varied.size(), 1u);
  EXPECT_TRUE(graph.node(four.path[0]).outputs_vary);
}

// A training step on a padded batch of `batch` rows with learning rate `lr`.
Trace padded_step(std::int64_t batch, double lr) {
  StepOptions options;
  options.batch = batch;
  options.lr = lr;
  return training_step(options);
}

TEST(Merge, ScalarThatVariedOnOnePathStartsFedOnANewBranch) {
  // Padded batches of a few lengths: each length opens a branch at the first op, and the
  // learning rate varies after every one of them alike.
  TraceGraph graph;
  graph.merge(padded_step(8, 0.1));
  MergeResult learnt = graph.merge(padded_step(8, 0.09));
  ASSERT_EQ(learnt.generalised.size(), 1u);
  MergeResult longer = graph.merge(padded_step(16, 0.08));  // a new branch from the first op on
  graph.verify();
  EXPECT_EQ(longer.nodes_added, kStepOps);
  EXPECT_TRUE(longer.generalised.empty());
  const OpIdentity& mul = graph.node(longer.path[3]).identity;
  EXPECT_TRUE(mul.args()[1].is<ScalarFeed>());
  // Only where a scalar varied: sub_'s alpha never did.
  EXPECT_TRUE(graph.node(longer.path[4]).identity.args()[2].is<std::int64_t>());
  // The branch's second traversal is already contained (co-execution would not fall back).
  MergeResult again = graph.merge(padded_step(16, 0.07));
  graph.verify();
  EXPECT_TRUE(again.contained);
  EXPECT_EQ(again.path, longer.path);
}

TEST(Merge, KnownVaryingScalarStaysConcreteBesideASiblingTakingAValue) {
  // relu then foo(k): on the batch-2 path, foo with k=2 is an exact child; once k varied on
  // the batch-1 path, a new foo child with another value and other outputs on the batch-2
  // path must not be fed, or it would also accept k=2.
  auto program = [](std::int64_t batch, std::int64_t k, std::int64_t out_length) {
    TraceBuilder b;
    Value x = b.feed(0, meta({batch}));
    Value y = b.op("aten::relu", {x});
    b.op("aten::foo", {y}, {Arg(k)}, meta({out_length}));
    return b.take();
  };
  TraceGraph graph;
  graph.merge(program(2, 2, 2));
  graph.merge(program(1, 1, 1));
  ASSERT_EQ(graph.merge(program(1, 3, 1)).generalised.size(), 1u);  // k varies at foo
  MergeResult five = graph.merge(program(2, 5, 5));
  graph.verify();
  EXPECT_EQ(five.nodes_added, 1u);
  const Arg& k = graph.node(five.path[1]).identity.args()[1];
  ASSERT_TRUE(k.is<std::int64_t>());
  EXPECT_EQ(k.as<std::int64_t>(), 5);
}

TEST(Merge, KnownVaryingScalarsSurviveAGraphRebuiltFromItsParts) {
  TraceGraph graph;
  graph.merge(padded_step(8, 0.1));
  graph.merge(padded_step(8, 0.09));
  std::vector<Node> nodes;
  for (NodeId id = 0; id < graph.size(); ++id) nodes.push_back(graph.node(id));
  TraceGraph rebuilt =
      TraceGraph::from_parts(graph.root(), nodes, graph.states(), graph.feeds(), graph.constants());
  MergeResult longer = rebuilt.merge(padded_step(16, 0.08));
  rebuilt.verify();
  EXPECT_TRUE(rebuilt.node(longer.path[3]).identity.args()[1].is<ScalarFeed>());
}

Trace nonzero_program(std::int64_t found) {
  TraceBuilder b;
  Value x = b.feed(0, meta({16}));
  Value idx = b.op("aten::nonzero", {x}, {}, meta({found, 1}, "int64"));
  b.op("aten::neg", {idx});
  return b.take();
}

TEST(Merge, EqualIdentityWithOtherOutputsMarksNodeDataDependent) {
  TraceGraph graph;
  MergeResult three = graph.merge(nonzero_program(3));
  MergeResult five = graph.merge(nonzero_program(5));
  graph.verify();
  EXPECT_EQ(five.path[0], three.path[0]);
  EXPECT_EQ(five.outputs_varied, std::vector<NodeId>{three.path[0]});
  EXPECT_TRUE(graph.node(three.path[0]).outputs_vary);
  EXPECT_TRUE(graph.node(three.path[0]).flags.data_dependent_shape);
  ASSERT_TRUE(five.divergence_step.has_value());
  EXPECT_EQ(*five.divergence_step, 1u);  // neg sees another input shape
  EXPECT_FALSE(five.contained);
  EXPECT_TRUE(graph.merge(nonzero_program(5)).outputs_varied.empty());
}

TEST(Merge, PrefixIterationEndsInsideThePath) {
  TraceGraph graph;
  graph.merge(training_step());
  Trace shorter = training_step();
  shorter.records.resize(3);  // an early `break` after the loss
  MergeResult first = graph.merge(shorter);
  EXPECT_FALSE(first.contained);  // nobody ended there before
  EXPECT_EQ(first.nodes_added, 0u);
  EXPECT_TRUE(graph.merge(shorter).contained);
  EXPECT_EQ(graph.node(first.last).ends, 2u);
  graph.verify();
}

TEST(Merge, EmptyIterationEndsAtTheRoot) {
  TraceGraph graph;
  EXPECT_FALSE(graph.merge(Trace{}).contained);
  EXPECT_TRUE(graph.merge(Trace{}).contained);
  EXPECT_EQ(graph.root().ends, 2u);
  EXPECT_EQ(graph.root().count, 2u);
  graph.verify();
}

TEST(Merge, RegistersStatesFeedsAndNames) {
  TraceGraph graph;
  Trace trace = training_step(with_batch(8));
  trace.states.push_back({1, meta({4, 4}), "model.linear.weight"});
  graph.merge(trace);
  graph.merge(training_step(with_batch(4)));  // last batch smaller: feed meta updated
  graph.verify();
  ASSERT_EQ(graph.states().count(1), 1u);
  EXPECT_EQ(graph.states().at(1).name, "model.linear.weight");
  EXPECT_EQ(graph.states().at(1).meta, meta({4, 4}));
  ASSERT_EQ(graph.feeds().count(0), 1u);
  EXPECT_EQ(graph.feeds().at(0).meta, meta({8, 4}));  // first registration kept
  EXPECT_EQ(graph.branch_count(), 1u);                // other batch: other identity
}

TEST(Merge, FetchFlagIsKeptOnTheNode) {
  TraceGraph graph;
  MergeResult result = graph.merge(training_step());
  EXPECT_TRUE(graph.node(result.path[2]).flags.is_fetch);
  EXPECT_FALSE(graph.node(result.path[1]).flags.is_fetch);
  graph.mark_fetch(result.path[1]);
  EXPECT_TRUE(graph.node(result.path[1]).flags.is_fetch);
  EXPECT_EQ(training_step().fetch_points(), std::vector<std::size_t>{2});
  graph.verify();
}

TEST(Merge, WarnsFlagIsKeptOnceAnyIterationWarned) {
  TraceGraph graph;
  Trace warned = training_step();
  warned.records[1].flags.warns = true;  // the activation's kernel warned
  MergeResult result = graph.merge(warned);
  EXPECT_TRUE(graph.node(result.path[1]).flags.warns);
  EXPECT_FALSE(graph.node(result.path[0]).flags.warns);
  graph.merge(training_step());  // an iteration in which it did not warn
  EXPECT_TRUE(graph.node(result.path[1]).flags.warns);

  // Warned on a followed op (co-execution's prefix), and marked by the engine afterwards.
  Trace followed;
  followed.append_followed(result.path[0], /*is_fetch=*/false, /*outputs_differ=*/false,
                           /*warns=*/true);
  for (std::size_t i = 1; i < kStepOps; ++i) followed.append(training_step().records[i]);
  graph.merge(followed);
  EXPECT_TRUE(graph.node(result.path[0]).flags.warns);
  EXPECT_FALSE(graph.node(result.path[3]).flags.warns);
  graph.mark_warns(result.path[3]);
  EXPECT_TRUE(graph.node(result.path[3]).flags.warns);
  EXPECT_EQ(graph.branch_count(), 0u);  // one path throughout
  graph.verify();
}

TEST(Merge, MergeFromCountsTheCoexecutedPrefixOnce) {
  TraceGraph graph;
  graph.merge(training_step());
  graph.merge(training_step());
  // Co-execution matches mm, then the program takes tanh: fallback traces the rest.
  Trace diverging = training_step(with_tanh());
  Cursor cursor(graph);
  cursor.reset();
  ASSERT_NE(cursor.match(diverging.records[0].identity), nullptr);
  ASSERT_EQ(cursor.match(diverging.records[1].identity), nullptr);
  Trace rest;
  rest.records.assign(diverging.records.begin() + 1, diverging.records.end());
  MergeResult result = graph.merge_from(cursor.position().id, rest);
  graph.verify();
  EXPECT_EQ(graph.root().count, 3u);
  EXPECT_EQ(graph.node(result.path[0]).count, 3u);
  ASSERT_TRUE(result.divergence_step.has_value());
  EXPECT_EQ(*result.divergence_step, 1u);
  EXPECT_EQ(result.path.size(), kStepOps);
  EXPECT_TRUE(graph.merge(training_step(with_tanh())).contained);
}

TEST(Merge, NodesStayPutWhileTheGraphGrows) {
  TraceGraph graph;
  graph.merge(training_step());
  const Node* first = &graph.node(0);
  for (std::int64_t batch = 1; batch < 200; ++batch) graph.merge(training_step(with_batch(batch)));
  EXPECT_EQ(first, &graph.node(0));
  EXPECT_EQ(first->identity.op().name(), "aten::mm");
  graph.verify();
}

}  // namespace
}  // namespace terra::graph

namespace terra::graph {
namespace {

TEST(Merge, WalkVisitsEveryNodeOnceWithItsPath) {
  TraceGraph graph;
  graph.merge(testing::training_step());
  graph.merge(testing::training_step(testing::with_tanh()));
  graph.merge(testing::training_step(testing::with_batch(3)));
  graph.verify();
  std::vector<int> visits(graph.size(), 0);
  graph.walk([&](const Node& node, const std::vector<NodeId>& path) {
    ++visits[node.id];
    EXPECT_EQ(path, graph.path_to(node.id));
    for (std::uint32_t step = 0; step < path.size(); ++step) {
      EXPECT_EQ(path[step], graph.ancestor_at(node.id, step));
    }
  });
  EXPECT_EQ(visits, std::vector<int>(graph.size(), 1));
}

}  // namespace
}  // namespace terra::graph

namespace terra::graph {
namespace {

// Expects merge(trace) to throw VerifyError naming `expected`, leaving `graph` unchanged.
void expect_trace_rejected(TraceGraph& graph, const Trace& trace, const std::string& expected) {
  const std::string before = print(graph);
  try {
    graph.merge(trace);
    ADD_FAILURE() << "merge accepted a malformed trace (" << expected << ")";
  } catch (const VerifyError& error) {
    EXPECT_NE(std::string(error.what()).find(expected), std::string::npos) << error.what();
  }
  EXPECT_EQ(print(graph), before);
  graph.verify();
}

TEST(Merge, MalformedTracesAreRejectedBeforeTheGraphChanges) {
  TraceGraph graph;
  graph.merge(testing::training_step());
  auto with_record = [](std::size_t step, auto change) {
    Trace trace = testing::training_step(testing::with_tanh());
    OpIdentity& identity = trace.records[step].identity;
    std::vector<Arg> args = identity.args();
    std::vector<TensorInput> inputs = identity.inputs();
    change(args, inputs);
    identity = OpIdentity(identity.op(), args, inputs, identity.context());
    return trace;
  };
  expect_trace_rejected(graph,
                        with_record(2,
                                    [](auto&, auto& inputs) {
                                      inputs[0].ref = NodeOutput{2, 0};
                                    }),
                        "input refers to step 2");
  expect_trace_rejected(graph,
                        with_record(2,
                                    [](auto&, auto& inputs) {
                                      inputs[0].ref = NodeOutput{1, 1};
                                    }),
                        "missing output 1 of step 1");
  expect_trace_rejected(graph, with_record(0, [](auto& args, auto&) { args.pop_back(); }),
                        "input 1 is not named by exactly one arg");
  expect_trace_rejected(
      graph,
      with_record(3, [](auto& args, auto&) { args[1] = Arg(ScalarFeed{ScalarKind::kDouble}); }),
      "ScalarFeed");
  EXPECT_EQ(graph.feeds().size(), 1u);
}

// `full` with its first `count` records replaced by the nodes `path` took for them (what the
// engine records while an iteration walks a path the graph has, Trace::followed).
Trace followed_prefix(Trace full, const std::vector<NodeId>& path, std::size_t count) {
  Trace trace;
  for (std::size_t i = 0; i < count; ++i) {
    trace.append_followed(path.at(i), full.records[i].flags.is_fetch);
  }
  for (std::size_t i = count; i < full.records.size(); ++i) {
    trace.append(std::move(full.records[i]));
  }
  trace.states = std::move(full.states);
  trace.feeds = std::move(full.feeds);
  trace.constants = std::move(full.constants);
  return trace;
}

TEST(MergeFollowed, AWholeFollowedIterationCountsLikeItsRecords) {
  TraceGraph by_records;
  by_records.merge(training_step());
  by_records.merge(training_step());
  TraceGraph by_nodes;
  const MergeResult first = by_nodes.merge(training_step());
  const MergeResult again = by_nodes.merge(followed_prefix(training_step(), first.path, kStepOps));
  by_nodes.verify();
  EXPECT_TRUE(again.contained);
  EXPECT_EQ(again.path, first.path);
  EXPECT_EQ(by_nodes.size(), by_records.size());
  EXPECT_EQ(by_nodes.root().count, by_records.root().count);
  for (NodeId id = 0; id < by_nodes.size(); ++id) {
    EXPECT_EQ(by_nodes.node(id).count, by_records.node(id).count);
    EXPECT_EQ(by_nodes.node(id).ends, by_records.node(id).ends);
    EXPECT_EQ(by_nodes.node(id).flags.is_fetch, by_records.node(id).flags.is_fetch);
  }
}

TEST(MergeFollowed, RecordsAfterTheFollowedOpsBranchWhereTheFullTraceWould) {
  TraceGraph by_records;
  by_records.merge(training_step());
  const MergeResult expected = by_records.merge(training_step(with_tanh()));
  TraceGraph by_nodes;
  const MergeResult first = by_nodes.merge(training_step());
  // The engine followed mm (step 0); tanh differs from relu, so records start at step 1.
  const MergeResult result =
      by_nodes.merge(followed_prefix(training_step(with_tanh()), first.path, 1));
  by_nodes.verify();
  EXPECT_FALSE(result.contained);
  EXPECT_EQ(result.divergence_step, expected.divergence_step);
  EXPECT_EQ(result.nodes_added, expected.nodes_added);
  EXPECT_EQ(result.path, expected.path);
  EXPECT_EQ(by_nodes.size(), by_records.size());
  EXPECT_EQ(by_nodes.branch_count(), by_records.branch_count());
}

TEST(MergeFollowed, OutputsThatDifferMarkTheNodeAsFollowDoes) {
  TraceGraph graph;
  const MergeResult first = graph.merge(training_step());
  Trace trace = followed_prefix(training_step(), first.path, kStepOps);
  trace.followed[1].outputs_differ = true;
  const MergeResult result = graph.merge(trace);
  graph.verify();
  EXPECT_FALSE(result.contained);
  EXPECT_EQ(result.outputs_varied, std::vector<NodeId>{first.path[1]});
  EXPECT_TRUE(graph.node(first.path[1]).outputs_vary);
  EXPECT_TRUE(graph.node(first.path[1]).flags.data_dependent_shape);
  EXPECT_TRUE(graph.merge(trace).outputs_varied.empty());  // reported once
}

TEST(MergeFollowed, FetchesOnFollowedOpsReachTheirNodes) {
  TraceGraph graph;
  const MergeResult first = graph.merge(training_step());
  Trace trace = followed_prefix(training_step(), first.path, 3);
  EXPECT_EQ(trace.fetch_points(), std::vector<std::size_t>{2});  // the loss's item()
  trace.mark_fetch(1);
  trace.mark_fetch(4);  // a record, after the followed ops
  EXPECT_EQ(trace.fetch_points(), (std::vector<std::size_t>{1, 2, 4}));
  EXPECT_EQ(trace.steps(), kStepOps);
  graph.merge(trace);
  graph.verify();
  EXPECT_TRUE(graph.node(first.path[1]).flags.is_fetch);
  EXPECT_TRUE(graph.node(first.path[4]).flags.is_fetch);
  EXPECT_FALSE(graph.node(first.path[3]).flags.is_fetch);
}

TEST(MergeFollowed, FollowedOpsOffThePathAreRejectedAndChangeNothing) {
  TraceGraph graph;
  const MergeResult first = graph.merge(training_step());
  Trace skipping;  // step 0 followed the graph's second node: not a child of the root
  skipping.append_followed(first.path[1], false);
  EXPECT_THROW(graph.merge(skipping), VerifyError);
  Trace unknown;
  unknown.append_followed(static_cast<NodeId>(graph.size() + 3), false);
  EXPECT_THROW(graph.merge(unknown), VerifyError);
  Trace fetching = followed_prefix(training_step(), first.path, 2);
  fetching.followed[0].is_fetch = true;
  EXPECT_THROW(graph.merge_from(first.path[0], fetching), VerifyError);
  EXPECT_EQ(graph.root().count, 1u);
  EXPECT_FALSE(graph.node(first.path[0]).flags.is_fetch);
  graph.verify();
  Trace recorded = training_step();
  EXPECT_THROW(recorded.append_followed(first.path[0], false), std::logic_error);
}

}  // namespace
}  // namespace terra::graph
