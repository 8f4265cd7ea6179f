// Trace: the records of one iteration of a region, in program order, with what the
// iteration's inputs were (states, feeds, constants). Steps count from the iteration's first
// op; a NodeOutput{step} input refers to the op at `step` of the same trace.
//
// A trace may open with `followed`: ops that the engine, while tracing, matched to nodes the
// graph already has along one path from the root, with equal identity and equal outputs.
// Their records would be the nodes' own, so only the node is kept (building and merging a
// full record was most of what tracing added to an op). They sit at steps
// 0..followed.size()-1, and `records` follow from step followed.size().
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "terra/graph/node.h"
#include "terra/graph/op_record.h"
#include "terra/graph/tensor_meta.h"

namespace terra::graph {

// A tensor alive across iterations, as the graph describes it.
struct StateInfo {
  std::int64_t id = 0;
  TensorMeta meta;
  std::string name;  // "model.encoder.0.linear.weight" when the engine knows it; may be ""
};

// A tensor made by Python during the iteration and fed to the graph.
struct FeedInfo {
  std::int64_t index = 0;
  TensorMeta meta;
};

// A constant tensor the engine holds.
struct ConstantInfo {
  std::int64_t id = 0;
  TensorMeta meta;
};

// An op of the trace that is the graph's node `node` (see Trace): whether Python waited for
// its value in this iteration, and whether its outputs' metadata differed from the node's
// or it resized an input it writes (a data-dependent shape either way, as merge's follow
// would mark it).
struct FollowedOp {
  NodeId node = kRootId;
  bool is_fetch = false;
  bool outputs_differ = false;
  bool warns = false;
};

struct Trace {
  std::vector<FollowedOp> followed;  // steps 0..followed.size()-1 (see above)
  std::vector<OpRecord> records;     // the steps after them
  // Optional descriptions (names) of inputs; merge registers every State/Feed/Constant that
  // an input refers to even when absent here, with the input's metadata.
  std::vector<StateInfo> states;
  std::vector<FeedInfo> feeds;
  std::vector<ConstantInfo> constants;

  // Empties the trace, keeping the vectors' capacity (a recycled iteration's trace grows
  // no more once it held one iteration).
  void clear();
  // Appends a record and returns its step.
  std::size_t append(OpRecord record);
  // Appends an op that is node `node` of the graph (only before any record) and returns its
  // step.
  std::size_t append_followed(NodeId node, bool is_fetch, bool outputs_differ = false,
                              bool warns = false);
  // Number of ops (followed and recorded).
  std::size_t steps() const { return followed.size() + records.size(); }
  // Marks the op at `step` as a fetch point (Python waited for its value).
  void mark_fetch(std::size_t step);
  // Steps of the ops marked as fetch points, ascending.
  std::vector<std::size_t> fetch_points() const;
};

}  // namespace terra::graph
