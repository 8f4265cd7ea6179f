// Check feeders: the ops whose outputs a later value check reads (value_checks.h).
//
// A check waits for the values it reads, and for them only. But when those values come from
// a queued op, the wait covers everything queued before that op too. A language model's
// step reshapes its batch of labels (a view of the token stream, so the reshape copies)
// right before the loss: the copy was queued behind the whole forward, and the check of the
// loss's targets waited for the forward (1 ms of a 2 ms LSTM step). So the op of the
// iteration that produced a checked value is marked (whether or not the runner had finished
// it in time, which is luck), and from the next iteration on it runs at once on the Python
// thread whenever its inputs are ready. Such ops are bookkeeping on labels and indices;
// computing one costs Python less than the wait does. A marked op marks the producers of its
// own inputs in turn, up to kMaxFeederDepth ops back from the check: beyond that the values
// depend on real work (labels taken from a model's output), which the check has to wait for
// anyway.
#include "engine_impl.h"
#include "stack_arguments.h"

namespace terra::coexec {
namespace {

constexpr std::uint8_t kMaxFeederDepth = 4;

// The node of this iteration at `step`, an ancestor of `from` (or `from` itself).
const graph::Node* node_at_step(const graph::TraceGraph& graph, const graph::Node& from,
                                std::uint32_t step) {
  const graph::Node* at = &from;
  while (!at->is_root() && at->step > step) at = &graph.node(at->parent);
  return !at->is_root() && at->step == step ? at : nullptr;
}

}  // namespace

void Engine::Impl::mark_check_feeder(const graph::Node& reader, const at::Tensor& tensor,
                                     std::uint8_t depth) {
  const ValueEntry* value = iteration->values.find(tensor.unsafeGetTensorImpl());
  if (value == nullptr || !std::holds_alternative<graph::NodeOutput>(value->ref)) return;
  mark_check_feeder_at(reader, std::get<graph::NodeOutput>(value->ref).step, depth);
}

void Engine::Impl::mark_check_feeder_at(const graph::Node& reader, std::uint32_t step,
                                        std::uint8_t depth) {
  Region& region = *iteration->region;
  const graph::Node* producer = node_at_step(region.graph, reader, step);
  if (producer == nullptr) return;
  if (producer->flags.is_view_op) {
    // A view runs on the Python thread and shares its base's storage: the op to run at once
    // is the one computing the base.
    for (const graph::TensorInput& input : producer->identity.inputs()) {
      if (const auto* base = std::get_if<graph::NodeOutput>(&input.ref)) {
        mark_check_feeder_at(*producer, base->step, depth);
      }
    }
    return;
  }
  NodeRuntime& runtime = node_runtime(region, *producer);
  if (runtime.check_feeder_depth == 0 || depth < runtime.check_feeder_depth) {
    runtime.check_feeder_depth = depth;
  }
}

bool Engine::Impl::take_input_marking(const graph::Node& node, std::uint8_t depth) {
  NodeRuntime& runtime = node_runtime(*iteration->region, node);
  if (runtime.inputs_marked_at <= depth) return false;
  runtime.inputs_marked_at = depth;
  return true;
}

bool Engine::Impl::check_feeder_runs_now(const graph::Node& node, std::uint8_t depth,
                                         const OpInfo& info, const torch::jit::Stack& stack) {
  // An op that writes its arguments, or draws random numbers, keeps its place in the queue:
  // the reads queued before it and the default generator's order need it there.
  if (info.mutates || info.is_random || stack.size() < info.num_arguments) return false;
  const std::uint64_t finished = runner.finished();
  // Its inputs' producers are marked even when the runner has finished them by now: next
  // time it may not have.
  const bool mark = depth < kMaxFeederDepth && take_input_marking(node, depth);
  bool on_cpu = true;
  bool ready = true;
  for_each_tensor_argument(stack, info.num_arguments, [&](const at::Tensor& tensor) {
    on_cpu = on_cpu && tensor.is_cpu();
    if (mark) mark_check_feeder(node, tensor, static_cast<std::uint8_t>(depth + 1));
    if (pending_accesses.before_reading(storage_of(tensor)) > finished) ready = false;
  });
  return on_cpu && ready;
}

}  // namespace terra::coexec
