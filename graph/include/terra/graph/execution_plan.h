// ExecutionPlan: a straight-line sequence of nodes prepared for execution once: where each
// input comes from (a slot filled by an earlier step, or outside the sequence) and which slots
// die after each step (liveness), so an executor can free every value after its last use.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "terra/graph/input_ref.h"
#include "terra/graph/node.h"

namespace terra::graph {

class TraceGraph;

// Thrown when a sequence cannot be planned or executed (unknown op, bad sequence, kernel
// returning the wrong number of outputs).
class ExecutionError : public std::runtime_error {
 public:
  explicit ExecutionError(const std::string& message) : std::runtime_error(message) {}
};

// Where one tensor input of a planned step comes from.
struct PlannedInput {
  static constexpr std::uint32_t kExternal = UINT32_MAX;
  std::uint32_t slot = kExternal;  // a slot of this plan, or kExternal: ask the value source
  InputRef ref;                    // the node's input ref (used when external)
};

struct PlannedStep {
  const Node* node = nullptr;
  std::vector<PlannedInput> inputs;     // in OpIdentity::inputs order
  std::uint32_t first_output_slot = 0;  // outputs occupy consecutive slots
  std::vector<std::uint32_t> release;   // slots whose last use is this step, freed after it
};

class ExecutionPlan {
 public:
  // Plans `sequence`: nodes of `graph` at consecutive steps along one path (each the child
  // of the previous). NodeOutput inputs from before the first node are external. Outputs
  // listed in `keep` (by step and output) are never released. Throws ExecutionError when
  // the sequence is not a consecutive path.
  static ExecutionPlan build(const TraceGraph& graph, const std::vector<NodeId>& sequence,
                             const std::vector<NodeOutput>& keep = {});

  std::size_t size() const { return steps_.size(); }
  const PlannedStep& step(std::size_t i) const { return steps_[i]; }
  const std::vector<PlannedStep>& steps() const { return steps_; }
  // Total number of output slots (one per output of every step).
  std::size_t slot_count() const { return slot_count_; }
  // The slot of output `output` at iteration step `step`, or PlannedInput::kExternal when
  // that step is not in the plan.
  std::uint32_t slot_of(NodeOutput output) const;

 private:
  std::vector<PlannedStep> steps_;
  std::size_t slot_count_ = 0;
  std::uint32_t first_step_ = 0;
};

}  // namespace terra::graph
