// Backward passes recorded once and replayed (see backward_replay.h).
#include <ATen/EmptyTensor.h>
#include <ATen/SavedTensorHooks.h>
#include <torch/csrc/autograd/function.h>

#include <algorithm>
#include <map>

#include "autograd_walk.h"
#include "engine_impl.h"
#include "interceptor.h"
#include "stack_arguments.h"

namespace terra::coexec {
namespace {

OutputSpec meta_of(const at::Tensor& tensor) {
  OutputSpec meta;
  meta.sizes = tensor.sizes().vec();
  meta.strides = tensor.strides().vec();
  meta.storage_offset = tensor.storage_offset();
  meta.dtype = tensor.dtype();
  meta.device = tensor.device();
  meta.keys =
      c10::DispatchKeySet(meta.device.is_cuda() ? c10::DispatchKey::CUDA : c10::DispatchKey::CPU);
  return meta;
}

// A tensor over `storage` laid out as `meta` says (what autograd's unpacking of a saved
// output would hand the op: a new TensorImpl over the same memory).
at::Tensor tensor_over(c10::Storage storage, const OutputSpec& meta) {
  at::Tensor tensor =
      at::detail::make_tensor<c10::TensorImpl>(std::move(storage), meta.keys, meta.dtype);
  tensor.unsafeGetTensorImpl()->set_sizes_and_strides(meta.sizes, meta.strides,
                                                      meta.storage_offset);
  return tensor;
}

// The tensor from before the block that a recorded op read: the live tensor registered as
// its reference and laid out as recorded; else one of the same sizes and strides as it is
// now (a slice whose offset moves from step to step, which the graph does not pin); else a
// tensor over its memory as recorded (an output only autograd still held, or one autograd
// handed over as a shallow copy found by its storage).
at::Tensor external_tensor(const c10::SmallVector<at::Tensor, 1>& registered,
                           const c10::Storage& storage, const RecordedTensor& recorded) {
  if (!recorded.by_storage) {
    for (const at::Tensor& tensor : registered) {
      if (same_layout(recorded.meta, tensor)) return tensor;
    }
    for (const at::Tensor& tensor : registered) {
      if (tensor.sizes().equals(recorded.meta.sizes) &&
          tensor.strides().equals(recorded.meta.strides) && tensor.dtype() == recorded.meta.dtype) {
        return tensor;
      }
    }
  }
  return tensor_over(storage, recorded.meta);
}

bool is_child(const graph::TraceGraph& graph, graph::NodeId parent, graph::NodeId child) {
  const auto& children = graph.node(parent).children;
  return std::find(children.begin(), children.end(), child) != children.end();
}

// The flattened tensor returns an op left on the stack.
std::vector<at::Tensor> take_outputs(torch::jit::Stack& stack) {
  std::vector<at::Tensor> outputs;
  for (c10::IValue& value : stack) {
    if (value.isTensor()) {
      outputs.push_back(std::move(value).toTensor());
    } else if (value.isTensorList()) {
      for (const at::Tensor& t : value.toTensorList()) outputs.push_back(t);
    } else if (value.isNone()) {
      outputs.emplace_back();
    }
  }
  stack.clear();
  return outputs;
}

}  // namespace

BackwardStart begin_backward(Engine& engine, const std::vector<at::Tensor>& roots,
                             bool retain_graph) {
  return engine.impl().begin_backward(roots, retain_graph);
}

void note_saved_tensor_hooks(Engine& engine) {
  Engine::Impl& impl = engine.impl();
  // Hooks are pushed per thread: another thread's do not reach the iteration's backward.
  if (impl.owner_thread.load(std::memory_order_relaxed) != std::this_thread::get_id()) return;
  if (Iteration* it = impl.iteration.get()) it->replay_unsafe = true;
}

void end_backward(Engine& engine, bool completed) { engine.impl().end_backward(completed); }

BackwardStart Engine::Impl::begin_backward(const std::vector<at::Tensor>& roots,
                                           bool retain_graph) {
  // Only the thread that runs the iteration (an adopted thread's ops run eagerly anyway).
  if (!config.replay_backward ||
      owner_thread.load(std::memory_order_relaxed) != std::this_thread::get_id()) {
    return BackwardStart::kRun;
  }
  Iteration* it = iteration.get();
  if (it == nullptr || it->mode != IterationMode::kCoexecuting || it->recording ||
      it->region->cursor->diverged()) {
    return BackwardStart::kRun;
  }
  if (it->replay_unsafe || !at::SavedTensorDefaultHooks::get_tls_state().stack.empty()) {
    if (config.debug >= 2) {
      debug(2, it->replay_unsafe ? "backward not replayed: varying scalars or shapes, or "
                                   "saved-tensor hooks, in this iteration"
                                 : "backward not replayed: saved-tensor hooks");
    }
    return BackwardStart::kRun;
  }
  InterceptionOff off;
  Region& region = *it->region;
  const AutogradWalk walk = walk_autograd_graph(roots);
  if (!walk.plain) {
    if (config.debug >= 2) debug(2, std::string("backward not replayable: ") + walk.reason);
    return BackwardStart::kRun;
  }
  // Leaves (and gradients to accumulate into) the iteration has not seen (a graph reaching
  // into an earlier iteration, gradients left by one) would become new states or feeds
  // here and renumber the ones after them: not replayed. Their places in the iteration join
  // the walk's signature.
  std::vector<std::uint64_t> signature = walk.signature;
  for (const at::Tensor& leaf : walk.leaves) {
    for (const at::Tensor* tensor : {&leaf, &leaf.grad()}) {
      if (!tensor->defined()) continue;
      const ValueEntry* entry = it->values.find(tensor->unsafeGetTensorImpl());
      if (entry == nullptr) {
        if (config.debug >= 2)
          debug(2, "backward not replayed: a tensor from before the iteration");
        return BackwardStart::kRun;
      }
      signature.push_back(graph::hash_input_ref(entry->ref));
    }
  }
  const graph::NodeId key = region.cursor->position().id;
  auto found = region.backward_blocks.find(key);
  if (found != region.backward_blocks.end() && found->second.signature == signature) {
    if (replay_backward(found->second, walk, retain_graph)) {
      region.counters.backwards_replayed++;
      return BackwardStart::kReplayed;
    }
    return BackwardStart::kRun;
  }
  auto recording = std::make_unique<BackwardRecording>();
  recording->key = key;
  recording->signature = std::move(signature);
  recording->first_step = region.cursor->steps();
  recording->leaves = walk.leaves;
  for (const at::Tensor& leaf : walk.leaves) {
    recording->grads_before.push_back(leaf.grad().defined() ? leaf.grad().unsafeGetTensorImpl()
                                                            : nullptr);
  }
  recording->fetches_before = region.counters.fetches;
  recording->eager_ops_before = region.counters.eager_ops;
  it->recording = std::move(recording);
  return BackwardStart::kRecording;
}

void Engine::Impl::end_backward(bool completed) {
  Iteration* it = iteration.get();
  if (it == nullptr || !it->recording) return;
  std::unique_ptr<BackwardRecording> recording = std::move(it->recording);
  if (!completed || it->mode != IterationMode::kCoexecuting || it->region->cursor->diverged())
    return;
  BackwardBlock block;
  if (finish_recording(*recording, &block)) {
    it->region->backward_blocks[recording->key] = std::move(block);
  } else {
    it->region->backward_blocks.erase(recording->key);
  }
}

void Engine::Impl::record_backward_op(const graph::Node& node, const OpInfo& info,
                                      const c10::OperatorHandle& op, c10::DispatchKeySet keys,
                                      const torch::jit::Stack& stack) {
  BackwardRecording& recording = *iteration->recording;
  const std::size_t n = info.num_arguments;
  if (!recording.replayable) return;
  if (stack.size() < n || node.identity.has_scalar_feeds() ||
      node.step != recording.first_step + recording.ops.size()) {
    recording.replayable = false;
    return;
  }
  RecordedOp& recorded = recording.ops.emplace_back();
  recorded.node = node.id;
  recorded.info = &info;
  recorded.op = op;
  recorded.keys = keys;
  const c10::impl::LocalDispatchKeySet tls = c10::impl::tls_local_dispatch_key_set();
  recorded.tls_included = tls.included_;
  recorded.tls_excluded = tls.excluded_;
  recorded.autograd_state = c10::AutogradState::get_tls_state();
  recorded.arguments.reserve(n);
  auto note = [&](const at::Tensor& tensor, std::uint32_t argument, std::int32_t element) {
    // CPU only: on CUDA, autograd runs nodes on its device threads, each on its own stream.
    if (!tensor.is_cpu()) recording.replayable = false;
    RecordedTensor& noted = recorded.tensors.emplace_back();
    noted.argument = argument;
    noted.element = element;
    noted.ref = input_ref(tensor, *iteration);
    noted.meta = meta_of(tensor);
    const ValueEntry* entry = iteration->values.find(tensor.unsafeGetTensorImpl());
    noted.by_storage = entry == nullptr || entry->by_storage;
  };
  for (std::size_t i = stack.size() - n; i < stack.size(); ++i) {
    const auto argument = static_cast<std::uint32_t>(recorded.arguments.size());
    const c10::IValue& value = stack[i];
    if (value.isTensor()) {
      if (value.toTensor().defined()) note(value.toTensor(), argument, -1);
      recorded.arguments.emplace_back(at::Tensor());
    } else if (value.isTensorList()) {
      c10::List<at::Tensor> list;
      std::int32_t element = 0;
      for (const at::Tensor& tensor : value.toTensorList()) {
        note(tensor, argument, element++);
        list.push_back(at::Tensor());
      }
      recorded.arguments.emplace_back(std::move(list));
    } else if (value.isList() || value.isTuple() || value.isGenericDict() || value.isObject()) {
      // Containers other than Tensor[] (optional tensors, ...): not rebuilt here.
      bool holds_tensor = false;
      for_each_tensor_in(value, [&](const at::Tensor&) { holds_tensor = true; });
      if (holds_tensor || !value.isList()) recording.replayable = false;
      recorded.arguments.push_back(value);
    } else {
      recorded.arguments.push_back(value);
    }
  }
}

bool Engine::Impl::finish_recording(BackwardRecording& recording, BackwardBlock* block) {
  Iteration& it = *iteration;
  Region& region = *it.region;
  if (!recording.replayable || recording.ops.empty() ||
      region.counters.fetches != recording.fetches_before ||
      region.counters.eager_ops != recording.eager_ops_before ||
      region.cursor->steps() != recording.first_step + recording.ops.size()) {
    if (config.debug >= 2) {
      debug(2, "backward not recorded: " +
                   std::string(!recording.replayable ? "an op that cannot be replayed"
                               : recording.ops.empty()
                                   ? "no op"
                                   : "an op ran at once (fetched, eager, or unrecorded)"));
    }
    return false;
  }
  const std::uint32_t end_step = region.cursor->steps();
  auto in_block = [&](const graph::InputRef& ref) {
    const auto* output = std::get_if<graph::NodeOutput>(&ref);
    return output != nullptr && output->step >= recording.first_step && output->step < end_step;
  };
  // The last reader of each output made in the block (leaves' gradients are kept).
  std::map<std::pair<std::uint32_t, std::uint32_t>, std::size_t> last_reader;
  for (std::size_t i = 0; i < recording.ops.size(); ++i) {
    for (RecordedTensor& tensor : recording.ops[i].tensors) {
      if (in_block(tensor.ref)) {
        const auto& output = std::get<graph::NodeOutput>(tensor.ref);
        last_reader[{output.step - recording.first_step, output.output}] = i;
        continue;
      }
      auto known = std::find(block->externals.begin(), block->externals.end(), tensor.ref);
      tensor.external = static_cast<std::int32_t>(known - block->externals.begin());
      if (known == block->externals.end()) block->externals.push_back(tensor.ref);
    }
  }
  for (std::size_t i = 0; i < recording.leaves.size(); ++i) {
    LeafGrad grad;
    const at::Tensor& value = recording.leaves[i].grad();
    if (value.defined() && value.unsafeGetTensorImpl() == recording.grads_before[i]) {
      grad.kind = LeafGrad::Kind::kKept;
    } else if (value.defined()) {
      const ValueEntry* entry = it.values.find(value.unsafeGetTensorImpl());
      if (entry == nullptr || !in_block(entry->ref)) return false;
      grad.kind = LeafGrad::Kind::kAssigned;
      grad.output = std::get<graph::NodeOutput>(entry->ref);
    } else if (recording.grads_before[i] != nullptr) {
      return false;  // a gradient dropped: not autograd's doing
    }
    block->grads.push_back(grad);
  }
  // Outputs nothing in the block reads go right after their op.
  for (std::uint32_t i = 0; i < recording.ops.size(); ++i) {
    const auto outputs =
        static_cast<std::uint32_t>(region.graph.node(recording.ops[i].node).outputs.size());
    for (std::uint32_t k = 0; k < outputs; ++k) last_reader.emplace(std::make_pair(i, k), i);
  }
  for (const LeafGrad& grad : block->grads) {
    if (grad.kind == LeafGrad::Kind::kAssigned) {
      last_reader.erase({grad.output.step - recording.first_step, grad.output.output});
    }
  }
  for (const auto& [output, reader] : last_reader) {
    recording.ops[reader].last_reads.push_back(output);
  }
  block->signature = std::move(recording.signature);
  block->first_step = recording.first_step;
  block->ops = std::move(recording.ops);
  return true;
}

bool Engine::Impl::replay_backward(const BackwardBlock& block, const AutogradWalk& walk,
                                   bool retain_graph) {
  Iteration& it = *iteration;
  Region& region = *it.region;
  if (block.grads.size() != walk.leaves.size()) return false;
  // The recorded path must still be one in the graph (it is, unless the graph changed).
  graph::NodeId parent = region.cursor->position().id;
  for (const RecordedOp& op : block.ops) {
    if (!is_child(region.graph, parent, op.node)) return false;
    parent = op.node;
  }
  // Every tensor from before the block, found before anything is issued: the live tensors
  // registered as it (not the aliases found by its storage), and its memory.
  std::vector<c10::SmallVector<at::Tensor, 1>> externals(block.externals.size());
  auto index_of = [&](const graph::InputRef& ref) -> std::int64_t {
    auto found = std::find(block.externals.begin(), block.externals.end(), ref);
    return found == block.externals.end() ? -1 : found - block.externals.begin();
  };
  std::vector<c10::Storage> storages(block.externals.size());
  it.values.for_each([&](c10::TensorImpl*, ValueEntry& entry) {
    const std::int64_t index = index_of(entry.ref);
    if (index < 0) return;
    c10::intrusive_ptr<c10::TensorImpl> impl = entry.keep.lock();
    if (!impl) return;
    at::Tensor tensor(std::move(impl));
    if (!storages[index] && tensor.has_storage()) storages[index] = tensor.storage();
    if (!entry.by_storage) externals[index].push_back(std::move(tensor));
  });
  it.storages.for_each([&](c10::StorageImpl*, StorageEntry& entry) {
    const std::int64_t index = index_of(entry.output);
    if (index < 0 || storages[index]) return;
    c10::intrusive_ptr<c10::StorageImpl> storage = entry.keep.lock();
    if (storage) storages[index] = c10::Storage(std::move(storage));
  });
  for (std::size_t i = 0; i < externals.size(); ++i) {
    if (externals[i].empty() && !storages[i]) return false;
  }

  // Issued as the autograd engine issued them (its thread-local state: grad mode off).
  std::vector<std::vector<at::Tensor>> produced(block.ops.size());
  torch::jit::Stack stack;
  const c10::AutogradState saved_autograd = c10::AutogradState::get_tls_state();
  struct RestoreAutograd {
    c10::AutogradState state;
    ~RestoreAutograd() { c10::AutogradState::set_tls_state(state); }
  } restore{saved_autograd};
  for (std::size_t i = 0; i < block.ops.size(); ++i) {
    const RecordedOp& op = block.ops[i];
    const graph::Node* node =
        region.cursor->match_if([&](const graph::Node& child) { return child.id == op.node; });
    TORCH_CHECK(node != nullptr, "terra: a recorded backward pass left the graph");
    stack.assign(op.arguments.begin(), op.arguments.end());
    for (c10::IValue& argument : stack) {
      // Lists are shared between IValue copies: each call gets its own.
      if (argument.isTensorList()) argument = argument.toTensorList().copy();
    }
    for (const RecordedTensor& recorded : op.tensors) {
      at::Tensor tensor;
      if (recorded.external >= 0) {
        tensor =
            external_tensor(externals[recorded.external], storages[recorded.external], recorded);
      } else {
        const auto& output = std::get<graph::NodeOutput>(recorded.ref);
        tensor = produced.at(output.step - block.first_step).at(output.output);
        if (recorded.by_storage || !same_layout(recorded.meta, tensor)) {
          tensor = tensor_over(tensor.storage(), recorded.meta);
        }
      }
      c10::IValue& slot = stack[recorded.argument];
      if (recorded.element < 0) {
        slot = std::move(tensor);
      } else {
        slot.toTensorList().set(recorded.element, std::move(tensor));
      }
    }
    c10::impl::ForceDispatchKeyGuard keys_guard(op.tls_included, op.tls_excluded);
    c10::AutogradState::set_tls_state(op.autograd_state);
    coexecute_matched(*node, *op.info, *op.op, op.keys, &stack);
    produced[i] = take_outputs(stack);
    for (const auto& [producer, output] : op.last_reads) {
      if (output < produced[producer].size()) produced[producer][output].reset();
    }
  }
  c10::AutogradState::set_tls_state(saved_autograd);

  for (std::size_t i = 0; i < walk.leaves.size(); ++i) {
    const LeafGrad& grad = block.grads[i];
    if (grad.kind != LeafGrad::Kind::kAssigned) continue;  // kept: written in place
    at::Tensor leaf = walk.leaves[i];
    leaf.mutable_grad() = produced.at(grad.output.step - block.first_step).at(grad.output.output);
  }
  // As the autograd engine does after running each node of a graph it need not keep.
  if (!retain_graph) {
    for (const auto& node : walk.nodes) node->release_variables();
  }
  return true;
}

}  // namespace terra::coexec
