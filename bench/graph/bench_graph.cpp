// Measures what the co-execution hot path spends in terra::graph: building an OpIdentity,
// Cursor::match, merging a contained trace, the generic executor's per-node overhead, and
// Graph JSON. Prints one line per measurement (ns per op); asserts nothing.
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "terra/graph/graph.h"
#include "terra/graph/json.h"

namespace {

using namespace terra::graph;

// A 3-layer MLP training step in the shape the engine records it: forward (addmm, relu),
// loss, backward (mm, t, sum, threshold_backward), SGD updates (mul_, add_) per parameter.
Trace mlp_step(std::map<std::string, std::int64_t>& keys, double lr, std::int64_t batch = 32) {
  Trace trace;
  auto add = [&trace, &keys](const std::string& name, const std::string& overload,
                             std::vector<Arg> scalars, std::vector<TensorInput> inputs,
                             TensorMeta out) {
    std::vector<Arg> args;
    for (std::uint32_t i = 0; i < inputs.size(); ++i) args.emplace_back(TensorArg{i});
    for (Arg& s : scalars) args.push_back(std::move(s));
    OpRecord record;
    // Operator keys as the engine assigns them (its op-table index), for integer compares.
    auto key = keys.emplace(name + "." + overload, static_cast<std::int64_t>(keys.size())).first;
    record.identity = OpIdentity(OperatorName(name, overload, key->second), std::move(args),
                                 std::move(inputs), 1);
    record.outputs.push_back(OutputInfo::fresh(out));
    record.source = {"train.py", 20};
    record.module_path = "model/layers";
    auto step = static_cast<std::uint32_t>(trace.append(std::move(record)));
    return TensorInput{NodeOutput{step, 0}, out};
  };
  const std::int64_t width = 64;
  TensorInput x{Feed{0}, TensorMeta::contiguous({batch, width})};
  std::vector<TensorInput> weights, biases;
  for (std::int64_t layer = 0; layer < 3; ++layer) {
    weights.push_back(
        {State{2 * layer}, TensorMeta::contiguous({width, width}, "float32", "cpu", true)});
    biases.push_back(
        {State{2 * layer + 1}, TensorMeta::contiguous({width}, "float32", "cpu", true)});
  }
  TensorInput h = x;
  std::vector<TensorInput> activations;
  for (std::size_t layer = 0; layer < 3; ++layer) {
    TensorInput wt = add("aten::t", "", {}, {weights[layer]}, weights[layer].meta);
    h = add("aten::addmm", "", {Arg(std::int64_t{1}), Arg(std::int64_t{1})}, {biases[layer], h, wt},
            h.meta);
    h = add("aten::relu", "", {}, {h}, h.meta);
    activations.push_back(h);
  }
  TensorInput loss = add("aten::mean", "", {Arg()}, {h}, TensorMeta::contiguous({}));
  TensorInput grad = add("aten::ones_like", "", {}, {loss}, loss.meta);
  for (std::size_t layer = 3; layer-- > 0;) {
    grad = add("aten::threshold_backward", "", {Arg(0.0)}, {grad, activations[layer]}, h.meta);
    TensorInput gw = add("aten::mm", "", {}, {grad, activations[layer]}, weights[layer].meta);
    TensorInput gb =
        add("aten::sum", "dim_IntList", {Arg(IntList{0}), Arg(true)}, {grad}, biases[layer].meta);
    add("aten::mul_", "Scalar", {Arg(-lr)}, {gw}, gw.meta);
    add("aten::add_", "Tensor", {Arg(std::int64_t{1})}, {weights[layer], gw}, weights[layer].meta);
    add("aten::add_", "Tensor", {Arg(-lr)}, {biases[layer], gb}, biases[layer].meta);
  }
  return trace;
}

// Best of five runs of `body` (the machine is shared: the minimum is the least disturbed).
template <typename F>
double ns_per(std::size_t operations, F&& body) {
  double best = 1e300;
  for (int run = 0; run < 5; ++run) {
    auto start = std::chrono::steady_clock::now();
    body();
    auto end = std::chrono::steady_clock::now();
    double ns = std::chrono::duration<double, std::nano>(end - start).count() / operations;
    if (ns < best) best = ns;
  }
  return best;
}

void report(const char* what, double ns) { std::printf("%-52s %10.1f ns\n", what, ns); }

}  // namespace

int main() {
  const int iterations = 20000;
  std::map<std::string, std::int64_t> keys;  // operator keys, as the engine's op table
  std::vector<Trace> traces;
  for (int i = 0; i < 64; ++i) traces.push_back(mlp_step(keys, 0.1 * (1.0 - i / 128.0)));
  const std::size_t ops = traces[0].records.size();
  std::printf(
      "program: MLP step, %zu ops per iteration, %d iterations per measurement, best of 5\n", ops,
      iterations);

  TraceGraph graph;
  graph.merge(traces[0]);
  graph.merge(traces[1]);  // the learning rates become scalar feeds
  graph.verify();

  // Building identities from parts (what the engine does per op), parts copied each time.
  std::size_t sink = 0;
  report("OpIdentity construction (copying parts) / op", ns_per(ops * iterations / 10, [&] {
           for (int i = 0; i < iterations / 10; ++i) {
             for (const OpRecord& r : traces[i % 64].records) {
               OpIdentity id(r.identity.op(), r.identity.args(), r.identity.inputs(), 1);
               sink += id.hash() & 1;
             }
           }
         }));

  std::vector<OpIdentity> identities;
  for (const OpRecord& r : traces[0].records) identities.push_back(r.identity);
  report("OpIdentity::rehash (hash of op, args, inputs) / op", ns_per(ops * iterations, [&] {
           for (int i = 0; i < iterations; ++i) {
             for (OpIdentity& id : identities) {
               id.rehash();
               sink += id.hash() & 1;
             }
           }
         }));

  Cursor cursor(graph);
  std::size_t matched = 0;
  report("Cursor::match / op (scalar feeds, no branch)", ns_per(ops * iterations, [&] {
           for (int i = 0; i < iterations; ++i) {
             cursor.reset();
             for (const OpRecord& r : traces[i % 64].records)
               matched += cursor.match(r.identity) != nullptr;
             cursor.finish();
           }
         }));
  if (matched != 5 * ops * iterations) std::printf("unexpected divergence\n");

  TraceGraph branched = graph;
  branched.merge(mlp_step(keys, 0.1, 16));  // a last-batch branch at the first op
  Cursor branch_cursor(branched);
  report("Cursor::match / op (after a branch point)", ns_per(ops * iterations, [&] {
           for (int i = 0; i < iterations; ++i) {
             branch_cursor.reset();
             for (const OpRecord& r : traces[i % 64].records) branch_cursor.match(r.identity);
             branch_cursor.finish();
           }
         }));

  report("TraceGraph::merge of a contained trace / record", ns_per(ops * iterations / 10, [&] {
           for (int i = 0; i < iterations / 10; ++i) graph.merge(traces[i % 64]);
         }));

  OpTable<int> table;
  for (const char* name :
       {"aten::t", "aten::addmm", "aten::relu", "aten::mean", "aten::ones_like",
        "aten::threshold_backward", "aten::mm", "aten::sum", "aten::mul_", "aten::add_"}) {
    table.add(name, [](KernelCall<int>& call) {
      return std::vector<int>(call.node.outputs.size(), static_cast<int>(call.inputs.size()));
    });
  }
  struct Source : ValueSource<int> {
    int input(const InputRef&) override { return 1; }
    Arg scalar(const Node&, std::size_t) override { return Arg(0.1); }
  } source;
  std::vector<NodeId> path = graph.path_to(cursor.path().back());
  ExecutionPlan plan = ExecutionPlan::build(graph, path);
  report("Execution<int> / node (plan reused, trivial kernels)", ns_per(ops * iterations / 10, [&] {
           for (int i = 0; i < iterations / 10; ++i) {
             Execution<int> run(plan, table, source);
             run.run();
             sink += run.live_values();
           }
         }));

  report("to_json / node", ns_per(ops * 200, [&] {
           for (int i = 0; i < 200; ++i) sink += to_json_string(graph, {}, nullptr).size();
         }));
  graph.verify();
  std::printf("(checksum %zu)\n", sink % 10);
  return 0;
}
