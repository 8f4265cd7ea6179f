#include "terra/graph/execution_plan.h"

#include <algorithm>

#include "terra/graph/trace_graph.h"

namespace terra::graph {
namespace {

void check_sequence(const TraceGraph& graph, const std::vector<NodeId>& sequence) {
  for (std::size_t i = 0; i < sequence.size(); ++i) {
    if (sequence[i] >= graph.size()) {
      throw ExecutionError("plan: node " + std::to_string(sequence[i]) + " does not exist");
    }
    if (i > 0 && graph.node(sequence[i]).parent != sequence[i - 1]) {
      throw ExecutionError("plan: node " + std::to_string(sequence[i]) + " does not follow node " +
                           std::to_string(sequence[i - 1]));
    }
  }
}

}  // namespace

ExecutionPlan ExecutionPlan::build(const TraceGraph& graph, const std::vector<NodeId>& sequence,
                                   const std::vector<NodeOutput>& keep) {
  check_sequence(graph, sequence);
  ExecutionPlan plan;
  if (sequence.empty()) return plan;
  plan.first_step_ = graph.node(sequence.front()).step;
  plan.steps_.reserve(sequence.size());
  for (NodeId id : sequence) {
    PlannedStep step;
    step.node = &graph.node(id);
    step.first_output_slot = static_cast<std::uint32_t>(plan.slot_count_);
    plan.slot_count_ += step.node->outputs.size();
    plan.steps_.push_back(std::move(step));
  }

  // Liveness: a slot dies after the last step that reads it, or right after it is produced
  // when nothing reads it; kept slots never die.
  std::vector<std::size_t> last_use(plan.slot_count_);
  for (std::size_t i = 0; i < plan.steps_.size(); ++i) {
    PlannedStep& step = plan.steps_[i];
    for (std::uint32_t s = 0; s < step.node->outputs.size(); ++s) {
      last_use[step.first_output_slot + s] = i;
    }
    for (const TensorInput& input : step.node->identity.inputs()) {
      PlannedInput planned{PlannedInput::kExternal, input.ref};
      if (const auto* output = std::get_if<NodeOutput>(&input.ref)) {
        planned.slot = plan.slot_of(*output);
      }
      if (planned.slot != PlannedInput::kExternal) last_use[planned.slot] = i;
      step.inputs.push_back(std::move(planned));
    }
  }
  std::vector<bool> kept(plan.slot_count_, false);
  for (NodeOutput output : keep) {
    std::uint32_t slot = plan.slot_of(output);
    if (slot != PlannedInput::kExternal) kept[slot] = true;
  }
  for (std::uint32_t slot = 0; slot < plan.slot_count_; ++slot) {
    if (!kept[slot]) plan.steps_[last_use[slot]].release.push_back(slot);
  }
  return plan;
}

std::uint32_t ExecutionPlan::slot_of(NodeOutput output) const {
  if (output.step < first_step_ || output.step - first_step_ >= steps_.size()) {
    return PlannedInput::kExternal;
  }
  const PlannedStep& step = steps_[output.step - first_step_];
  if (output.output >= step.node->outputs.size()) return PlannedInput::kExternal;
  return step.first_output_slot + output.output;
}

}  // namespace terra::graph
