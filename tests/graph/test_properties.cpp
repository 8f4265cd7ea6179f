// Property tests over many generated programs (fixed seeds, so deterministic): whatever the
// mix of branches, varying scalars and varying shapes, every merged iteration is contained
// afterwards, a Cursor walks it to a known end, the graph verifies and JSON round-trips.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>

#include "programs.h"
#include "terra/graph/json.h"

namespace terra::graph {
namespace {

using testing::meta;
using testing::TraceBuilder;
using testing::Value;

// One generated program: a fixed list of op "sites"; each iteration draws the choices an
// imperative program would make (which side of an `if`, the learning rate, the batch size).
class GeneratedProgram {
 public:
  explicit GeneratedProgram(std::uint32_t seed) : random_(seed) {
    sites_ = 4 + static_cast<int>(random_() % 12);
    for (int i = 0; i < sites_; ++i) kinds_.push_back(static_cast<int>(random_() % 5));
  }

  // The trace of one iteration; `draw` supplies the iteration's choices.
  Trace iteration(std::mt19937& draw) const {
    TraceBuilder b;
    const std::int64_t batch = draw() % 4 == 0 ? 3 : 8;  // sometimes a smaller last batch
    std::vector<Value> live = {b.feed(0, meta({batch, 4})), b.state(1, meta({batch, 4}))};
    for (int site = 0; site < sites_; ++site) {
      const Value& a = live[draw() % 2 == 0 ? live.size() - 1 : (site * 7) % live.size()];
      switch (kinds_[site]) {
        case 0:  // an `if` on a fetched value: relu or tanh
          live.push_back(b.op(draw() % 3 == 0 ? "aten::tanh" : "aten::relu", {a}));
          break;
        case 1:  // a scheduled learning rate
          live.push_back(b.op("aten::mul", {a}, {Arg(0.5 / (1 + draw() % 100))}));
          break;
        case 2:  // a shape-changing reduction, dim drawn
          live.push_back(b.op("aten::sum", {a}, {Arg(std::int64_t(draw() % 2))},
                              meta({draw() % 2 == 0 ? a.meta.sizes[0] : 4})));
          live.pop_back();  // its shape may not fit the others: read but not reused
          b.fetch_last();
          break;
        case 3:  // a sometimes-skipped op (early `continue`)
          if (draw() % 4 != 0) live.push_back(b.op("aten::neg", {a}));
          break;
        default:  // binary op on two live values of equal shape
          live.push_back(b.op("aten::add", {a, live[0]}, {Arg(std::int64_t{1})}));
          break;
      }
    }
    return b.take();
  }

 private:
  std::mt19937 random_;
  int sites_ = 0;
  std::vector<int> kinds_;
};

void expect_cursor_walks(TraceGraph& graph, const Trace& trace, const std::string& where) {
  Cursor cursor(graph);
  cursor.reset();
  for (std::size_t step = 0; step < trace.records.size(); ++step) {
    const Node* node = cursor.match(trace.records[step].identity);
    ASSERT_NE(node, nullptr) << where << " step " << step;
    ASSERT_EQ(node->step, step);
  }
  EXPECT_TRUE(cursor.at_end()) << where;
  EXPECT_TRUE(cursor.finish()) << where;
}

TEST(Properties, EveryMergedIterationIsContainedAndWalkable) {
  for (std::uint32_t seed = 1; seed <= 60; ++seed) {
    GeneratedProgram program(seed);
    std::mt19937 draw(seed * 7919);
    std::vector<Trace> traces;
    TraceGraph graph;
    std::size_t total_records = 0;
    for (int i = 0; i < 12; ++i) {
      traces.push_back(program.iteration(draw));
      total_records += traces.back().records.size();
      graph.merge(traces.back());
      graph.verify();
    }
    EXPECT_LE(graph.size(), total_records);
    for (std::size_t i = 0; i < traces.size(); ++i) {
      const std::string where = "seed " + std::to_string(seed) + " trace " + std::to_string(i);
      MergeResult again = graph.merge(traces[i]);
      EXPECT_TRUE(again.contained) << where;
      EXPECT_EQ(again.nodes_added, 0u) << where;
      expect_cursor_walks(graph, traces[i], where);
      // The path can be planned for execution.
      EXPECT_EQ(ExecutionPlan::build(graph, again.path).size(), traces[i].records.size());
    }
    graph.verify();
    GraphDocument back = from_json(to_json(graph, {"r", "gen", "gen.py", 1}, nullptr));
    EXPECT_EQ(print(back.graph), print(graph)) << "seed " << seed;
  }
}

TEST(Properties, GraphsDoNotDependOnMergeOrderForContainment) {
  for (std::uint32_t seed = 100; seed < 120; ++seed) {
    GeneratedProgram program(seed);
    std::mt19937 draw(seed);
    std::vector<Trace> traces;
    for (int i = 0; i < 8; ++i) traces.push_back(program.iteration(draw));
    TraceGraph forward, backward;
    for (const Trace& t : traces) forward.merge(t);
    for (auto it = traces.rbegin(); it != traces.rend(); ++it) backward.merge(*it);
    forward.verify();
    backward.verify();
    EXPECT_EQ(forward.root().count, backward.root().count);
    for (const Trace& t : traces) {
      EXPECT_TRUE(forward.merge(t).contained);
      EXPECT_TRUE(backward.merge(t).contained);
    }
  }
}

}  // namespace
}  // namespace terra::graph
