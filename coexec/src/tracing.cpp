// Tracing (DESIGN §3): an op runs eagerly and is recorded — identity, output metadata and
// aliasing, flags, source location — into the iteration's graph::Trace, merged into the
// region's TraceGraph when the iteration ends.
//
// While an iteration still walks a path the graph has, an op that a node's compiled call
// pattern accepts (as in co-execution) is recorded as that node (Trace::followed): its
// identity would be the node's, so neither it, its metadata nor its source location is built;
// only its outputs are compared with the node's.
#include <chrono>
#include <string>
#include <vector>

#include "call_identity.h"
#include "engine_impl.h"
#include "op_warnings.h"
#include "stack_arguments.h"

namespace terra::coexec {
namespace {

using Clock = std::chrono::steady_clock;
// One traced op in this many is timed: the two clock reads were 2 % of a traced op, and the
// mean they feed (the runner's first lag estimate) needs no more.
constexpr std::uint64_t kTimeOneOpIn = 4;
constexpr const char* kUndefinedDtype = "undefined";

graph::OutputInfo undefined_output() {
  graph::OutputInfo info;
  info.meta.dtype = kUndefinedDtype;
  return info;
}

// Flattened tensor returns left on the stack by an eager run (undefined ones included), into
// `tensors` (a buffer kept across ops: perf put about 5 % of a traced op's time in allocating
// a fresh vector for them), emptied when the guard goes.
class ReturnedTensors {
 public:
  ReturnedTensors(const torch::jit::Stack& stack, std::vector<at::Tensor>& tensors)
      : tensors_(tensors) {
    tensors_.clear();
    for (const auto& value : stack) {
      if (value.isTensor()) {
        tensors_.push_back(value.toTensor());
      } else if (value.isTensorList()) {
        for (const at::Tensor& t : value.toTensorList()) tensors_.push_back(t);
      } else if (value.isNone()) {
        tensors_.emplace_back();
      }
    }
  }
  ~ReturnedTensors() { tensors_.clear(); }  // no reference outlives the op (use counts)
  ReturnedTensors(const ReturnedTensors&) = delete;
  ReturnedTensors& operator=(const ReturnedTensors&) = delete;
  const std::vector<at::Tensor>& tensors() const { return tensors_; }

 private:
  std::vector<at::Tensor>& tensors_;
};

graph::OutputInfo describe_output(const at::Tensor& out, c10::ArrayRef<at::Tensor> inputs) {
  if (!out.defined()) return undefined_output();
  graph::OutputInfo info = graph::OutputInfo::fresh(tensor_meta(out));
  for (std::size_t k = 0; k < inputs.size(); ++k) {
    const at::Tensor& in = inputs[k];
    if (!in.defined()) continue;
    if (in.unsafeGetTensorImpl() == out.unsafeGetTensorImpl()) {
      info.alias = graph::AliasKind::kSame;
      info.input = static_cast<std::int32_t>(k);
      return info;
    }
    if (in.has_storage() && out.has_storage() && in.storage().is_alias_of(out.storage())) {
      info.alias = graph::AliasKind::kView;
      info.input = static_cast<std::int32_t>(k);
    }
  }
  return info;
}

// An output as the trace records it.
graph::OutputInfo traced_output(const at::Tensor& out, c10::ArrayRef<at::Tensor> inputs) {
  graph::OutputInfo output = describe_output(out, inputs);
  if (output.alias != graph::AliasKind::kFresh) {
    // Views and in-place results are never made from the record (views run for real), and
    // their offset moves with the input's (a sliding window): keep it out of the merge.
    output.meta.storage_offset = 0;
  }
  return output;
}

// An output as the trace keeps it. A sparse, nested or quantized result of dense inputs
// (sparse_coo_tensor, a nested tensor from a mask) gets no metadata and sets `*unsupported`:
// no placeholder can stand for it, so the op's node runs eagerly (a fetch).
graph::OutputInfo recorded_output(const at::Tensor& out, c10::ArrayRef<at::Tensor> inputs,
                                  bool* unsupported) {
  if (!tensor_supported(out)) {
    *unsupported = true;
    return undefined_output();
  }
  return traced_output(out, inputs);
}

// The sizes of an op's inputs before it ran, when it writes one: an op that resizes an input
// (out= into a wrong-sized tensor) has a data-dependent shape, and in co-execution must run
// eagerly, where Python needs the new sizes at once.
class SizesBefore {
 public:
  SizesBefore(const OpInfo& info, c10::ArrayRef<at::Tensor> inputs) {
    if (!info.mutates) return;
    for (const at::Tensor& in : inputs) {
      sizes_.push_back(in.dim());
      sizes_.append(in.sizes().begin(), in.sizes().end());
    }
  }
  // True when the op wrote an input and some input's sizes changed since.
  bool any_resized(c10::ArrayRef<at::Tensor> inputs) const {
    if (sizes_.empty()) return false;
    std::size_t at = 0;
    for (const at::Tensor& in : inputs) {
      const auto dim = static_cast<std::size_t>(sizes_[at++]);
      if (!in.sizes().equals(c10::ArrayRef<std::int64_t>(sizes_).slice(at, dim))) return true;
      at += dim;
    }
    return false;
  }

 private:
  c10::SmallVector<std::int64_t, 24> sizes_;  // per input: its dim, then its sizes
};

}  // namespace

bool Engine::Impl::trace_as_followed(const OpInfo& info, const c10::OperatorHandle& op,
                                     c10::DispatchKeySet keys, torch::jit::Stack* stack) {
  Iteration& it = *iteration;
  // Ops whose shapes follow values take the full path (their record says so).
  if (info.data_dependent) return false;
  const graph::Node* node = match_compiled(info, *stack, it);
  if (node == nullptr || node->flags.data_dependent_shape) return false;
  c10::SmallVector<at::Tensor, 6> inputs;  // held: an output may reuse a freed input's address
  for_each_tensor_argument(*stack, info.num_arguments,
                           [&](const at::Tensor& tensor) { inputs.push_back(tensor); });
  const SizesBefore sizes_before(info, inputs);  // a resize is reported as outputs that differ
  wait_before_running_now(info, *stack);
  const bool warned = run_eagerly_sampling_time(op, keys, stack);
  const ReturnedTensors returned(*stack, traced_outputs);
  const std::vector<at::Tensor>& outs = returned.tensors();
  bool outputs_differ = outs.size() != node->outputs.size() || sizes_before.any_resized(inputs);
  bool unsupported = false;
  for (std::size_t k = 0; k < outs.size(); ++k) {
    const graph::OutputInfo output = recorded_output(outs[k], inputs, &unsupported);
    outputs_differ = outputs_differ || k >= node->outputs.size() || output != node->outputs[k];
  }
  const std::uint32_t step = it.step++;
  it.trace.append_followed(node->id, info.op_class == OpClass::kFetch || unsupported,
                           outputs_differ, warned);
  register_outputs(*stack, step, it);
  return true;
}

bool Engine::Impl::run_eagerly_sampling_time(const c10::OperatorHandle& op,
                                             c10::DispatchKeySet keys, torch::jit::Stack* stack) {
  const WarningWatch watch;
  if (traced_ops++ % kTimeOneOpIn != 0) {
    run_eagerly(op, keys, stack);
    return watch.warned();
  }
  const auto start = Clock::now();
  run_eagerly(op, keys, stack);
  note_traced_op_time(std::chrono::duration<double>(Clock::now() - start).count());
  return watch.warned();
}

void Engine::Impl::trace_op(const OpInfo& info, const c10::OperatorHandle& op,
                            c10::DispatchKeySet keys, torch::jit::Stack* stack, CallView& call) {
  Iteration& it = *iteration;
  const SizesBefore sizes_before(info, call.inputs);
  graph::OpRecord record;
  if (hooks.source_location) {
    graph::SharedString file;
    int line = 0;
    if (hooks.source_location(&file, &line)) record.source = {std::move(file), line};
  }
  record.module_path = module_path;

  // Ops queued by an earlier co-executed iteration (of this or another region) may still be
  // running: an op traced now runs eagerly, so it waits for what it reads (or writes).
  wait_before_running_now(info, *stack);
  record.flags.warns = run_eagerly_sampling_time(op, keys, stack);

  const ReturnedTensors returned(*stack, traced_outputs);
  const std::vector<at::Tensor>& outs = returned.tensors();
  const bool resized = sizes_before.any_resized(call.inputs);
  record.outputs.reserve(outs.size());
  bool unsupported = false;
  for (const at::Tensor& out : outs) {
    graph::OutputInfo output = recorded_output(out, call.inputs, &unsupported);
    if (output.alias == graph::AliasKind::kView) record.flags.is_view_op = true;
    record.outputs.push_back(std::move(output));
  }
  record.flags.is_inplace = info.mutates;
  record.flags.is_random = info.is_random;
  record.flags.is_fetch = info.op_class == OpClass::kFetch || unsupported;
  record.flags.data_dependent_shape =
      info.data_dependent || resized ||
      (call.bool_index && info.name.qualified() == "aten::index.Tensor");
  record.identity = std::move(call.identity);
  if (config.debug >= 2) debug(2, "trace " + describe_identity(record.identity));

  const std::uint32_t step = it.step++;
  it.trace.append(std::move(record));
  register_outputs(*stack, step, it);
}

void Engine::Impl::note_traced_op_time(double seconds) {
  // Short memory (about 8 samples), like the runner's own mean.
  traced_op_seconds =
      traced_op_seconds == 0.0 ? seconds : traced_op_seconds + (seconds - traced_op_seconds) / 8;
}

}  // namespace terra::coexec
