// InputRef: where a tensor input of an op came from.
#pragma once

#include <cstdint>
#include <variant>

#include "terra/graph/hash.h"

namespace terra::graph {

// Output `output` of the op at position `step` of the same iteration (0-based index of the
// record in its Trace == depth of the node in the TraceGraph). Using the position rather than a
// node id makes a record's identity equal to its node's identity without any translation.
struct NodeOutput {
  std::uint32_t step = 0;
  std::uint32_t output = 0;
  friend bool operator==(NodeOutput a, NodeOutput b) {
    return a.step == b.step && a.output == b.output;
  }
};

// A tensor alive across iterations (parameter, buffer, optimizer slot); id chosen by the engine.
struct State {
  std::int64_t id = 0;
  friend bool operator==(State a, State b) { return a.id == b.id; }
};

// The `index`-th tensor Python made in this iteration (from_numpy, torch.tensor(list)...).
struct Feed {
  std::int64_t index = 0;
  friend bool operator==(Feed a, Feed b) { return a.index == b.index; }
};

// A constant tensor held by the engine, identified by the engine's id.
struct Constant {
  std::int64_t id = 0;
  friend bool operator==(Constant a, Constant b) { return a.id == b.id; }
};

using InputRef = std::variant<NodeOutput, State, Feed, Constant>;

// Deterministic hash of an InputRef (alternative and fields).
HashValue hash_input_ref(const InputRef& ref);

}  // namespace terra::graph
