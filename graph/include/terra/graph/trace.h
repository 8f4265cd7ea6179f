// Trace: the records of one iteration of a region, in program order, with what the
// iteration's inputs were (states, feeds, constants). Record i sits at step i; a
// NodeOutput{step} input refers to record `step` of the same trace.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

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

struct Trace {
  std::vector<OpRecord> records;
  // Optional descriptions (names) of inputs; merge registers every State/Feed/Constant that
  // an input refers to even when absent here, with the input's metadata.
  std::vector<StateInfo> states;
  std::vector<FeedInfo> feeds;
  std::vector<ConstantInfo> constants;

  // Empties the trace, keeping the vectors' capacity (a recycled iteration's trace grows
  // no more once it held one iteration).
  void clear();
  // Appends a record and returns its step (index).
  std::size_t append(OpRecord record);
  // Marks record `step` as a fetch point (Python waited for its value).
  void mark_fetch(std::size_t step);
  // Indices of records with flags.is_fetch, ascending.
  std::vector<std::size_t> fetch_points() const;
};

}  // namespace terra::graph
