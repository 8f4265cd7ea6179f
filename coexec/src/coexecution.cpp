// Co-execution (DESIGN §3): each op is matched against the region's graph at the cursor;
// a match answers Python with placeholders — real tensors whose memory the GraphRunner fills
// later — and queues the op on the runner's ring, or runs it at once when Python needs its
// value (fetch) or it only touches metadata (views). A mismatch falls back (fallback.cpp).
#include <ATen/EmptyTensor.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>

#include <cstring>
#include <unordered_map>

#include "call_identity.h"
#include "engine_impl.h"
#include "placeholder_storage.h"
#include "stack_arguments.h"

namespace terra::coexec {
namespace {

constexpr const char* kUndefinedDtype = "undefined";

at::ScalarType scalar_type_from_name(const std::string& name) {
  static const std::unordered_map<std::string, at::ScalarType> types = {
      {"float32", at::kFloat},
      {"float64", at::kDouble},
      {"float16", at::kHalf},
      {"bfloat16", at::kBFloat16},
      {"int64", at::kLong},
      {"int32", at::kInt},
      {"int16", at::kShort},
      {"int8", at::kChar},
      {"uint8", at::kByte},
      {"bool", at::kBool},
      {"complex64", at::kComplexFloat},
      {"complex128", at::kComplexDouble}};
  auto found = types.find(name);
  TORCH_CHECK(found != types.end(), "terra: unknown dtype in graph: ", name);
  return found->second;
}

OutputSpec decode_output(const graph::OutputInfo& info) {
  OutputSpec spec;
  spec.same_as_input = info.alias == graph::AliasKind::kSame;
  spec.input = info.input;
  if (info.meta.dtype == kUndefinedDtype) {
    spec.undefined = true;
    return spec;
  }
  spec.sizes = info.meta.sizes.vec();
  spec.strides = info.meta.strides.vec();
  spec.storage_offset = info.meta.storage_offset;
  const at::ScalarType type = scalar_type_from_name(info.meta.dtype);
  spec.dtype = c10::scalarTypeToTypeMeta(type);
  spec.device = c10::Device(info.meta.device);
  spec.nbytes = at::detail::computeStorageNbytes(spec.sizes, spec.strides, spec.dtype.itemsize(),
                                                 static_cast<std::size_t>(spec.storage_offset));
  spec.keys =
      c10::DispatchKeySet(spec.device.is_cuda() ? c10::DispatchKey::CUDA : c10::DispatchKey::CPU);
  return spec;
}

// A tensor with the promised metadata and a storage of the right size whose memory the
// GraphRunner provides later (or poisoned memory, to show reads that missed their fetch).
at::Tensor make_placeholder(const OutputSpec& spec, bool poison) {
  c10::Allocator* allocator = c10::GetAllocator(spec.device.type());
  c10::DataPtr data(nullptr, spec.device);
  if (poison && spec.device.is_cpu() && spec.nbytes > 0) {
    data = allocator->allocate(spec.nbytes);
    std::memset(data.get(), 0xFF, spec.nbytes);  // NaN for floats, -1 for ints
  }
  c10::intrusive_ptr<c10::StorageImpl> storage = c10::make_intrusive<PlaceholderStorage>(
      c10::StorageImpl::use_byte_size_t(), static_cast<std::int64_t>(spec.nbytes), std::move(data),
      allocator, /*resizable=*/true);
  at::Tensor tensor = at::detail::make_tensor<c10::TensorImpl>(c10::Storage(std::move(storage)),
                                                               spec.keys, spec.dtype);
  tensor.unsafeGetTensorImpl()->set_sizes_and_strides(spec.sizes, spec.strides,
                                                      spec.storage_offset);
  return tensor;
}

bool is_fetch_node(const OpInfo& info, const graph::Node& node) {
  return info.op_class == OpClass::kFetch || node.flags.is_fetch ||
         node.flags.data_dependent_shape || node.outputs_vary;
}

bool has_int_feed(const graph::Node& node) {
  if (!node.identity.has_scalar_feeds()) return false;
  for (const graph::Arg& arg : node.identity.args()) {
    if (arg.is<graph::ScalarFeed>() &&
        arg.as<graph::ScalarFeed>().kind == graph::ScalarKind::kInt) {
      return true;
    }
  }
  return false;
}

bool takes_tensor_requiring_grad(const OpInfo& info, const torch::jit::Stack& stack) {
  if (stack.size() < info.num_arguments) return true;
  bool requires = false;
  for_each_tensor_argument(stack, info.num_arguments, [&](const at::Tensor& tensor) {
    requires = requires || tensor.requires_grad();
  });
  return requires;
}

bool is_python_side_node(const OpInfo& info, const graph::Node& node) {
  return info.op_class == OpClass::kPythonSide || node.flags.is_view_op;
}

// The tensor in `slot` among the last `n` values of `stack` (the op's arguments).
const at::Tensor& input_at(const torch::jit::Stack& stack, std::size_t n, InputSlot slot) {
  const c10::IValue& value = stack[stack.size() - n + slot.argument];
  if (slot.element < 0) return value.toTensor();
  return value.toListRef()[slot.element].toTensor();
}

}  // namespace

NodeRuntime& Engine::Impl::node_runtime(Region& region, const graph::Node& node) {
  if (region.runtime.size() <= node.id) region.runtime.resize(region.graph.size());
  NodeRuntime& runtime = region.runtime[node.id];
  if (!runtime.outputs) {
    auto outputs = std::make_shared<std::vector<OutputSpec>>();
    for (const auto& out : node.outputs) outputs->push_back(decode_output(out));
    runtime.outputs = std::move(outputs);
    runtime.pattern = std::make_unique<CallPattern>(node.identity);
    runtime.tiny_cpu_inputs = !node.identity.inputs().empty();
    for (const graph::TensorInput& input : node.identity.inputs()) {
      runtime.tiny_cpu_inputs =
          runtime.tiny_cpu_inputs && input.meta.numel() <= 2 && input.meta.device == "cpu";
    }
  }
  return runtime;
}

const graph::Node* Engine::Impl::match_compiled(const OpInfo& info, const torch::jit::Stack& stack,
                                                Iteration& it) {
  const std::size_t n = info.num_arguments;
  if (stack.size() < n) return nullptr;
  Region& region = *it.region;
  const c10::IValue* args = stack.data() + (stack.size() - n);
  const std::uint64_t context = identity_context(info);
  const std::int64_t op_key = info.name.key();
  auto ref_of = [&](const at::Tensor& tensor) { return input_ref(tensor, it); };
  return region.cursor->match_if([&](const graph::Node& node) {
    return node_runtime(region, node).pattern->accepts(op_key, context, args, n, ref_of);
  });
}

void Engine::Impl::coexecute_op(const OpInfo& info, const c10::OperatorHandle& op,
                                c10::DispatchKeySet keys, torch::jit::Stack* stack,
                                CallView& call) {
  Iteration& it = *iteration;
  const graph::Node* node = it.region->cursor->match(call.identity);
  if (node == nullptr) {
    fall_back(info, call);
    trace_op(info, op, keys, stack, call);
    return;
  }
  coexecute_matched(*node, info, op, keys, stack, call.explicit_generator);
}

void Engine::Impl::coexecute_matched(const graph::Node& node, const OpInfo& info,
                                     const c10::OperatorHandle& op, c10::DispatchKeySet keys,
                                     torch::jit::Stack* stack, bool run_now) {
  Iteration& it = *iteration;
  Region& region = *it.region;
  it.step = node.step + 1;
  region.counters.ops_coexecuted++;
  if ((node.identity.has_scalar_feeds() || node.outputs_vary || node.flags.data_dependent_shape) &&
      !it.replay_unsafe && takes_tensor_requiring_grad(info, *stack)) {
    // Its varying scalars or shapes reach autograd's saved state (backward_replay.h).
    it.replay_unsafe = true;
  }
  if (it.recording) record_backward_op(node, info, op, keys, *stack);
  if (is_python_side_node(info, node)) {
    run_eagerly(op, keys, stack);
    register_outputs(*stack, node.step, it);
    return;
  }
  const bool fetch = run_now || is_fetch_node(info, node) || has_int_feed(node);
  const ExternalInputs external = fetch ? ExternalInputs::kNone : external_inputs(info, *stack);
  // An op whose values may make its kernel raise runs now, so that its error is raised here,
  // as in eager; it stays queueable for the calls whose values are fine. So does one that
  // writes external memory, which the program may read without the dispatcher, and one whose
  // kernel warned, so that Python sees the warning here (op_warnings.h).
  if (fetch || external == ExternalInputs::kRunNow || node.flags.warns ||
      (info.value_check != nullptr && may_raise_on_values(node, info, *stack))) {
    if (run_now) {
      sync();  // a Generator object: its state must be current for Python (see CallView)
    } else {
      wait_before_running_now(info, *stack);
    }
    region.counters.fetches++;
    if (fetch) region.graph.mark_fetch(node.id);
    run_eagerly(op, keys, stack);
    register_outputs(*stack, node.step, it);
    return;
  }
  // Copied: marking check feeders may touch other nodes' runtimes.
  const NodeRuntime& runtime = node_runtime(region, node);
  const std::uint8_t feeder_depth = runtime.check_feeder_depth;
  const bool tiny_cpu_inputs = runtime.tiny_cpu_inputs;
  if (feeder_depth > 0 && check_feeder_runs_now(node, feeder_depth, info, *stack)) {
    // A later op's value check reads its output: computed now, that check need not wait for
    // everything queued before it (check_feeders.cpp).
    run_eagerly(op, keys, stack);
    register_outputs(*stack, node.step, it);
    return;
  }
  if (tiny_cpu_inputs && may_run_now(info, *stack)) {
    // Scalar bookkeeping (an optimizer's step counter) that nothing queued touches: running
    // it now costs less than queuing it, and a later `.item()` of it needs no wait.
    run_eagerly(op, keys, stack);
    register_outputs(*stack, node.step, it);
    return;
  }
  queue_op(node, info, op, keys, stack, external == ExternalInputs::kSnapshot);
}

bool Engine::Impl::is_external(const at::Tensor& tensor) const {
  if (!tensor.has_storage() || !tensor.is_cpu()) return false;
  c10::StorageImpl* storage = tensor.storage().unsafeGetStorageImpl();
  if (exposed.contains(storage)) return true;
  // A placeholder's memory is the runner's to set (and it may be setting it now).
  return typeid(*storage) != typeid(PlaceholderStorage) && is_foreign_memory(*storage);
}

Engine::Impl::ExternalInputs Engine::Impl::external_inputs(const OpInfo& info,
                                                           const torch::jit::Stack& stack) const {
  if (stack.size() < info.num_arguments) return ExternalInputs::kNone;
  bool any = false;
  std::size_t bytes = 0;
  for_each_tensor_argument(stack, info.num_arguments, [&](const at::Tensor& tensor) {
    if (!is_external(tensor)) return;
    any = true;
    bytes += extent_bytes(tensor);
  });
  if (!any) return ExternalInputs::kNone;
  return info.mutates || bytes > kSnapshotMaxBytes ? ExternalInputs::kRunNow
                                                   : ExternalInputs::kSnapshot;
}

void Engine::Impl::snapshot_external_arguments(std::vector<c10::IValue>& arguments) const {
  for (c10::IValue& value : arguments) {
    replace_tensors_in(value, [&](const at::Tensor& tensor) -> std::optional<at::Tensor> {
      if (!is_external(tensor)) return std::nullopt;
      return snapshot(tensor);
    });
  }
}

void Engine::Impl::queue_op(const graph::Node& node, const OpInfo& info,
                            const c10::OperatorHandle& op, c10::DispatchKeySet keys,
                            torch::jit::Stack* stack, bool snapshot_external) {
  Iteration& it = *iteration;
  const NodeRuntime& runtime = node_runtime(*it.region, node);
  const std::vector<OutputSpec>& specs = *runtime.outputs;
  const std::size_t n = info.num_arguments;
  wait_for_runner_room();  // before taking a slot of the runner's ring

  const std::uint64_t sequence = runner.next_sequence();
  note_accesses_of_arguments(*stack, n, sequence, info.mutates);
  WorkItem& item = runner.next_slot();
  struct AbandonUnlessCommitted {
    GraphRunner& runner;
    bool committed = false;
    ~AbandonUnlessCommitted() {
      if (!committed) runner.abandon();
    }
  } slot_guard{runner};
  item.op = op;
  item.keys = keys;
  const c10::impl::LocalDispatchKeySet tls = c10::impl::tls_local_dispatch_key_set();
  item.tls_included = tls.included_;
  item.tls_excluded = tls.excluded_;
  item.autograd_state = c10::AutogradState::get_tls_state();
  std::optional<c10::Device> cuda_device = runtime.pattern->cuda_input();

  // The returns, shaped as the schema says: a lone Tensor[] or one Tensor per return; built
  // before the arguments leave the stack (an in-place op returns one of them).
  const auto& returns = op.schema().returns();
  const bool returns_list =
      returns.size() == 1 && returns[0].type()->kind() == c10::TypeKind::ListType;
  std::vector<at::Tensor> list_outputs;
  at::Tensor single_output;
  torch::jit::Stack outputs;
  if (!returns_list && specs.size() > 1) outputs.reserve(specs.size());
  for (const OutputSpec& spec : specs) {
    at::Tensor out;
    if (spec.undefined) {
      item.storages.emplace_back(c10::intrusive_ptr<c10::StorageImpl>());
    } else if (spec.same_as_input) {
      out = input_at(*stack, n, runtime.pattern->input_slots().at(spec.input));
      item.storages.emplace_back(c10::intrusive_ptr<c10::StorageImpl>());
    } else {
      out = make_placeholder(spec, config.poison);
      pending_accesses.write(out.storage().unsafeGetStorageImpl(), sequence);
      item.storages.push_back(out.storage().getWeakStorageImpl());
      if (spec.device.is_cuda()) cuda_device = spec.device;
    }
    if (returns_list) {
      list_outputs.push_back(std::move(out));
    } else if (specs.size() == 1) {
      single_output = std::move(out);
    } else {
      outputs.emplace_back(std::move(out));
    }
  }

  item.arguments.insert(item.arguments.end(), std::make_move_iterator(stack->end() - n),
                        std::make_move_iterator(stack->end()));
  stack->erase(stack->end() - n, stack->end());
  if (snapshot_external) snapshot_external_arguments(item.arguments);
  runner.hold_arguments(item);  // use counts stay as in eager (autograd reads them)
  item.specs = runtime.outputs;
  if (cuda_device) {
    item.stream = c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA)->getStream(*cuda_device);
  }
  item.region = it.region->id;
  item.node = node.id;

  if (returns_list) {
    stack->emplace_back(c10::List<at::Tensor>(std::move(list_outputs)));
  } else if (specs.size() == 1) {
    stack->emplace_back(std::move(single_output));
  } else {
    for (auto& out : outputs) stack->push_back(std::move(out));
  }
  slot_guard.committed = true;
  runner.commit();
  register_outputs(*stack, node.step, it);
}

void Engine::Impl::note_accesses_of_arguments(const torch::jit::Stack& stack, std::size_t n,
                                              std::uint64_t sequence, bool writes) {
  // The schema says which arguments are written; every tensor argument of a mutating op is
  // counted as written, which can only lengthen a later wait.
  for_each_tensor_argument(stack, n, [&](const at::Tensor& tensor) {
    if (writes) {
      pending_accesses.write(storage_of(tensor), sequence);
    } else {
      pending_accesses.read(storage_of(tensor), sequence);
    }
  });
}

bool Engine::Impl::may_run_now(const OpInfo& info, const torch::jit::Stack& stack) {
  if (info.is_random || stack.size() < info.num_arguments) return false;
  const std::uint64_t finished = runner.finished();
  bool may = true;
  for_each_tensor_argument(stack, info.num_arguments, [&](const at::Tensor& tensor) {
    c10::StorageImpl* storage = storage_of(tensor);
    may = may && tensor.is_cpu() && PendingAccesses::is_tiny(storage) &&
          pending_accesses.before_reading(storage) <= finished &&
          (!info.mutates || pending_accesses.before_writing(storage) <= finished);
  });
  return may;
}

void Engine::Impl::wait_before_running_now(const OpInfo& info, const torch::jit::Stack& stack) {
  if (!runner.pending()) {
    if (runner.failed()) sync();
    return;
  }
  if (info.mutates || info.is_random || stack.size() < info.num_arguments) {
    sync();
    return;
  }
  std::uint64_t needed = 0;
  for_each_tensor_argument(stack, info.num_arguments, [&](const at::Tensor& tensor) {
    needed = std::max(needed, pending_accesses.before_reading(storage_of(tensor)));
  });
  wait_until_finished(needed);
}

void Engine::Impl::wait_until_finished(std::uint64_t needed) {
  if (needed > runner.finished()) {
    auto wait = [&] { runner.wait_until_finished(needed); };
    if (hooks.wait_without_gil) {
      hooks.wait_without_gil(wait);
    } else {
      wait();
    }
  }
  if (runner.failed()) sync();  // rethrows the runner's error
}

bool Engine::Impl::may_raise_on_values(const graph::Node& node, const OpInfo& info,
                                       const torch::jit::Stack& stack) {
  const std::size_t n = info.num_arguments;
  if (stack.size() < n) return true;
  const OpArguments args(stack.data() + (stack.size() - n), n);
  std::uint64_t needed = 0;
  bool on_cpu = true;
  // Marked whether or not they are still being computed now: whether the runner was done in
  // time is luck, which the next iteration may not have.
  const bool mark = take_input_marking(node, 0);
  info.value_check->for_each_checked(args, [&](const at::Tensor& tensor) {
    on_cpu = on_cpu && tensor.is_cpu();
    if (mark) mark_check_feeder(node, tensor, 1);
    needed = std::max(needed, pending_accesses.before_reading(storage_of(tensor)));
  });
  if (!on_cpu) return false;  // CUDA kernels report these errors asynchronously in eager too
  wait_until_finished(needed);
  const bool may_raise = info.value_check->may_raise(args);
  if (may_raise && config.debug >= 2)
    debug(2, "at once (values may raise) " + info.name.qualified());
  return may_raise;
}

void Engine::Impl::wait_for_runner_room() {
  const double max_lag_s = config.max_queued_ms / 1000.0;
  if (runner.has_room(config.max_queued, max_lag_s)) return;
  // A signal that arrives meanwhile (Python's handler only sets a flag) is acted on once
  // half the queue drained: within about half of max_queued_ms.
  auto wait = [&] { runner.wait_for_room(); };
  if (hooks.wait_without_gil) {
    hooks.wait_without_gil(wait);
  } else {
    wait();
  }
}

}  // namespace terra::coexec
