// The co-execution walk: matching, divergence, branch informing, counts at finish.
#include <gtest/gtest.h>

#include "programs.h"

namespace terra::graph {
namespace {

using testing::training_step;
using testing::with_lr;
using testing::with_tanh;

TraceGraph graph_of(std::initializer_list<Trace> traces) {
  TraceGraph graph;
  for (const Trace& trace : traces) graph.merge(trace);
  return graph;
}

TEST(Cursor, MatchesAWholeIterationAndCountsAtFinish) {
  TraceGraph graph = graph_of({training_step(), training_step()});
  Cursor cursor(graph);
  cursor.reset();
  Trace program = training_step();
  for (std::size_t step = 0; step < program.records.size(); ++step) {
    const Node* node = cursor.match(program.records[step].identity);
    ASSERT_NE(node, nullptr) << "step " << step;
    EXPECT_EQ(node->step, step);
    EXPECT_EQ(node->outputs, program.records[step].outputs);
    EXPECT_EQ(cursor.steps(), step + 1);
    EXPECT_EQ(cursor.at_end(), step + 1 == program.records.size());
  }
  EXPECT_EQ(graph.root().count, 2u);  // nothing committed before finish
  EXPECT_TRUE(cursor.finish());
  EXPECT_FALSE(cursor.finish());  // once per iteration
  EXPECT_EQ(graph.root().count, 3u);
  for (NodeId id = 0; id < graph.size(); ++id) EXPECT_EQ(graph.node(id).count, 3u);
  graph.verify();
}

TEST(Cursor, DivergenceReturnsNullAndCommitsNothing) {
  TraceGraph graph = graph_of({training_step(), training_step()});
  Cursor cursor(graph);
  cursor.reset();
  Trace other = training_step(with_tanh());
  ASSERT_NE(cursor.match(other.records[0].identity), nullptr);
  EXPECT_EQ(cursor.match(other.records[1].identity), nullptr);
  EXPECT_TRUE(cursor.diverged());
  EXPECT_EQ(cursor.position().step, 0u);  // stays at the last matched node
  EXPECT_EQ(cursor.match(training_step().records[1].identity), nullptr);  // until reset
  EXPECT_FALSE(cursor.finish());
  EXPECT_EQ(graph.root().count, 2u);
  graph.verify();
  cursor.reset();
  EXPECT_FALSE(cursor.diverged());
  EXPECT_NE(cursor.match(other.records[0].identity), nullptr);
}

TEST(Cursor, InformsWhichChildWasTakenAtABranch) {
  TraceGraph graph = graph_of({training_step(), training_step(with_tanh())});
  const Node& mm = graph.node(graph.root().children[0]);
  ASSERT_TRUE(mm.is_branch());
  Cursor cursor(graph);
  for (bool tanh : {false, true, true}) {
    cursor.reset();
    Trace program = tanh ? training_step(with_tanh()) : training_step();
    for (const OpRecord& record : program.records)
      ASSERT_NE(cursor.match(record.identity), nullptr);
    EXPECT_EQ(mm.last_taken, tanh ? 1 : 0);
    EXPECT_TRUE(cursor.finish());
    EXPECT_EQ(graph.node(cursor.path()[1]).identity.op().name(),
              tanh ? "aten::tanh" : "aten::relu");
  }
  EXPECT_EQ(mm.taken, (std::vector<std::uint64_t>{2, 3}));
  graph.verify();
}

TEST(Cursor, LastChoiceReportsTheChildIndex) {
  TraceGraph graph = graph_of({training_step(), training_step(with_tanh())});
  Cursor cursor(graph);
  cursor.reset();
  Trace program = training_step(with_tanh());
  cursor.match(program.records[0].identity);
  EXPECT_EQ(cursor.last_choice(), 0);
  cursor.match(program.records[1].identity);
  EXPECT_EQ(cursor.last_choice(), 1);
  graph.verify();
}

TEST(Cursor, ScalarFeedNodeAcceptsAnUnseenValue) {
  TraceGraph graph = graph_of({training_step(with_lr(0.1)), training_step(with_lr(0.05))});
  Cursor cursor(graph);
  cursor.reset();
  for (const OpRecord& record : training_step(with_lr(0.0123)).records) {
    ASSERT_NE(cursor.match(record.identity), nullptr);
  }
  EXPECT_TRUE(cursor.finish());
  graph.verify();
}

TEST(Cursor, InteriorPositionIsNotAnEnd) {
  TraceGraph graph = graph_of({training_step()});
  Cursor cursor(graph);
  cursor.reset();
  EXPECT_FALSE(cursor.at_end());
  cursor.match(training_step().records[0].identity);
  EXPECT_FALSE(cursor.at_end());
  EXPECT_FALSE(cursor.finish());  // the engine merges such an iteration instead
  EXPECT_EQ(graph.root().count, 1u);
  graph.verify();
}

TEST(Cursor, FollowsTheGraphAsItGrows) {
  TraceGraph graph = graph_of({training_step()});
  Cursor cursor(graph);
  cursor.reset();
  Trace tanh = training_step(with_tanh());
  cursor.match(tanh.records[0].identity);
  EXPECT_EQ(cursor.match(tanh.records[1].identity), nullptr);
  graph.merge(tanh);  // fallback merged the iteration
  cursor.reset();
  for (const OpRecord& record : tanh.records) ASSERT_NE(cursor.match(record.identity), nullptr);
  EXPECT_TRUE(cursor.finish());
  graph.verify();
}

TEST(Cursor, SteadyStateWalkReusesItsPathBuffer) {
  TraceGraph graph = graph_of({training_step(), training_step()});
  Cursor cursor(graph);
  Trace program = training_step();
  cursor.reset();
  for (const OpRecord& record : program.records) cursor.match(record.identity);
  cursor.finish();
  const NodeId* buffer = cursor.path().data();
  for (int iteration = 0; iteration < 3; ++iteration) {
    cursor.reset();
    for (const OpRecord& record : program.records) cursor.match(record.identity);
    EXPECT_TRUE(cursor.finish());
    EXPECT_EQ(cursor.path().data(), buffer);  // no reallocation on the hot path
  }
  graph.verify();
}

}  // namespace
}  // namespace terra::graph
