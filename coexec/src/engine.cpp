// The co-execution engine (see engine.h and DESIGN §3–§5).
//
// Every op issued on a thread with an active iteration reaches Impl::handle. While a region
// is traced, the op runs eagerly and is recorded into a graph::Trace, merged into the region's
// TraceGraph at the end of the iteration. Once an iteration repeated, the region co-executes:
// each op is matched against the graph's cursor; a match answers Python with placeholders
// (real tensors whose memory the GraphRunner fills later) and queues the op; a mismatch syncs
// and traces the rest of the iteration eagerly (fallback).
#include <ATen/EmptyTensor.h>
#include <ATen/Parallel.h>
#include <c10/core/DefaultDtype.h>
#include <c10/core/GradMode.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>

#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine_impl.h"
#include "interceptor.h"
#include "terra/graph/json.h"

namespace terra::coexec {
namespace {

using Clock = std::chrono::steady_clock;
constexpr const char* kUndefinedDtype = "undefined";

graph::MergeOptions merge_options() {
  graph::MergeOptions options;
  options.generalise_doubles = true;
  // Ints too (slice bounds that move every iteration): an int can shape outputs, so a queued
  // node with an int ScalarFeed runs eagerly after a sync (has_int_feed) instead of trusting
  // its recorded metadata; views run for real anyway.
  options.generalise_ints = true;
  return options;
}

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

// The metadata of an input as identity compares it. The storage offset is left out: it
// never changes an output's metadata, and batches sliced from one buffer differ in it.
graph::TensorMeta identity_meta(const at::Tensor& tensor) {
  graph::TensorMeta meta = tensor_meta(tensor);
  meta.storage_offset = 0;
  return meta;
}

graph::OutputInfo undefined_output() {
  graph::OutputInfo info;
  info.meta.dtype = kUndefinedDtype;
  return info;
}

// Engine-defined context bits of an op's identity: grad mode, and the default dtype for
// factories (which read it when no dtype is passed).
std::uint64_t identity_context(const OpInfo& info) {
  std::uint64_t context = c10::GradMode::is_enabled() ? 1 : 0;
  if (!info.has_tensor_args) {
    context |= static_cast<std::uint64_t>(c10::get_default_dtype_as_scalartype()) + 1 << 8;
  }
  return context;
}

graph::Arg other_arg(const std::string& text) { return graph::Arg(graph::OtherArg{text}); }

// An int list, or a SymInt list whose elements are all concrete (sizes arrive so).
bool is_concrete_int_list(const c10::IValue& value) {
  if (value.isIntList()) return true;
  if (!value.isList()) return false;
  const auto list = value.toListRef();
  if (list.empty()) return false;
  for (const c10::IValue& element : list) {
    if (element.isInt()) continue;
    if (element.isSymInt() && !element.toSymInt().is_heap_allocated()) continue;
    return false;
  }
  return true;
}

graph::Arg concrete_int_list(const c10::IValue& value) {
  graph::IntList ints;
  if (value.isIntList()) {
    auto list = value.toIntList();
    ints.assign(list.begin(), list.end());
  } else {
    for (const c10::IValue& element : value.toListRef()) {
      ints.push_back(element.isInt() ? element.toInt() : element.toSymInt().as_int_unchecked());
    }
  }
  return graph::Arg(std::move(ints));
}

// Non-tensor argument -> Arg; false when the value cannot be part of an identity.
bool scalar_arg(const c10::IValue& value, graph::Arg* arg) {
  if (value.isNone()) {
    *arg = graph::Arg(graph::NoneArg{});
  } else if (value.isBool()) {
    *arg = graph::Arg(value.toBool());
  } else if (value.isInt()) {
    *arg = graph::Arg(static_cast<std::int64_t>(value.toInt()));
  } else if (value.isSymInt() && !value.toSymInt().is_heap_allocated()) {
    *arg = graph::Arg(static_cast<std::int64_t>(value.toSymInt().as_int_unchecked()));
  } else if (value.isDouble()) {
    *arg = graph::Arg(value.toDouble());
  } else if (value.isString()) {
    *arg = graph::Arg(std::string(value.toStringRef()));
  } else if (value.isIntList()) {
    auto list = value.toIntList();
    *arg = graph::Arg(graph::IntList(list.begin(), list.end()));
  } else if (value.isDoubleList()) {
    auto list = value.toDoubleList();
    *arg = graph::Arg(graph::DoubleList(list.begin(), list.end()));
  } else if (value.isBoolList()) {
    std::string text = "bools:";
    for (bool b : value.toBoolList()) text += b ? '1' : '0';
    *arg = other_arg(text);
  } else if (value.isDevice()) {
    *arg = other_arg("device:" + device_name(value.toDevice()));
  } else if (value.isGenerator()) {
    *arg = other_arg("generator");  // the runner uses the very generator object
  } else if (value.isComplexDouble()) {
    std::ostringstream text;
    text << "complex:" << value.toComplexDouble();
    *arg = other_arg(text.str());
  } else if (value.isStream()) {
    *arg = other_arg("stream");
  } else {
    return false;  // symbolic values, objects, tuples...
  }
  return true;
}

// Flattened tensor returns left on the stack by an eager run (undefined ones included).
std::vector<at::Tensor> returned_tensors(const torch::jit::Stack& stack) {
  std::vector<at::Tensor> tensors;
  for (const auto& value : stack) {
    if (value.isTensor()) {
      tensors.push_back(value.toTensor());
    } else if (value.isTensorList()) {
      for (const at::Tensor& t : value.toTensorList()) tensors.push_back(t);
    } else if (value.isNone()) {
      tensors.emplace_back();
    }
  }
  return tensors;
}

graph::OutputInfo describe_output(const at::Tensor& out, const std::vector<at::Tensor>& inputs) {
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

OutputSpec decode_output(const graph::OutputInfo& info) {
  OutputSpec spec;
  spec.same_as_input = info.alias == graph::AliasKind::kSame;
  spec.input = info.input;
  if (info.meta.dtype == kUndefinedDtype) {
    spec.undefined = true;
    return spec;
  }
  spec.sizes = info.meta.sizes;
  spec.strides = info.meta.strides;
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
  auto storage = c10::make_intrusive<c10::StorageImpl>(
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

bool is_python_side_node(const OpInfo& info, const graph::Node& node) {
  return info.op_class == OpClass::kPythonSide || node.flags.is_view_op;
}

std::string describe_identity(const graph::OpIdentity& identity) {
  std::ostringstream text;
  text << identity.op().qualified() << "(";
  for (std::size_t i = 0; i < identity.inputs().size(); ++i) {
    const auto& meta = identity.inputs()[i].meta;
    if (i) text << ", ";
    text << meta.dtype << "[";
    for (std::size_t d = 0; d < meta.sizes.size(); ++d) text << (d ? "," : "") << meta.sizes[d];
    text << "]";
    const graph::InputRef& ref = identity.inputs()[i].ref;
    if (const auto* out = std::get_if<graph::NodeOutput>(&ref)) {
      text << " of step " << out->step;
    } else if (const auto* state = std::get_if<graph::State>(&ref)) {
      text << " state " << state->id;
    } else if (const auto* feed = std::get_if<graph::Feed>(&ref)) {
      text << " feed " << feed->index;
    }
  }
  text << ")";
  return text.str();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Interception entry point.

void intercept_op(const c10::OperatorHandle& op, c10::DispatchKeySet keys,
                  torch::jit::Stack* stack) {
  Engine::instance().impl().handle(op, keys, stack);
}

Engine::Impl::Impl() = default;

void Engine::Impl::debug(int level, const std::string& message) const {
  if (config.debug >= level) std::cerr << "[terra] " << message << std::endl;
}

void Engine::Impl::run_eagerly(const c10::OperatorHandle& op, c10::DispatchKeySet keys,
                               torch::jit::Stack* stack) {
  if (keys.highestBackendKey() == c10::BackendComponent::InvalidBit) {
    op.callBoxed(stack);  // reached through the TLS key alone: dispatch afresh, unintercepted
  } else {
    op.redispatchBoxed(keys, stack);
  }
}

void Engine::Impl::handle(const c10::OperatorHandle& op, c10::DispatchKeySet keys,
                          torch::jit::Stack* stack) {
  InterceptionOff off;  // the engine's own work and every redispatch stay unintercepted
  if (config.debug >= 3) debug(3, "op " + c10::toString(op.operator_name()));
  keys = keys.remove_backend(c10::BackendComponent::PrivateUse1Bit);
  Iteration* it = iteration.get();
  if (it == nullptr || it->mode == IterationMode::kInactive) {
    // Between iterations interception stays on only until confirmed work has run.
    sync();
    if (it == nullptr) off.keep_off();
    run_eagerly(op, keys, stack);
    return;
  }
  if (runner.failed()) sync();  // a runner error surfaces at the next op
  const OpInfo& info = op_info(op);
  if (info.passthrough) {
    run_eagerly(op, keys, stack);
    return;
  }
  CallView call;
  if (!build_call(info, *stack, *it, &call)) {
    // Unsupported tensors or arguments: eager after a sync, unrecorded (outputs become feeds).
    if (config.debug >= 2) debug(2, "eager (unsupported) " + info.name.qualified());
    if (it->mode == IterationMode::kCoexecuting) sync();
    it->region->counters.eager_ops++;
    run_eagerly(op, keys, stack);
    return;
  }
  if (it->mode == IterationMode::kCoexecuting) {
    coexecute_op(info, op, keys, stack, call);
  } else {
    trace_op(info, op, keys, stack, call);
  }
}

// ---------------------------------------------------------------------------------------------
// Identity of a call.

graph::InputRef Engine::Impl::input_ref(const at::Tensor& tensor, Iteration& it) {
  c10::TensorImpl* impl = tensor.unsafeGetTensorImpl();
  auto found = it.values.find(impl);
  if (found != it.values.end()) return found->second.ref;
  graph::InputRef ref;
  if (tensor.has_storage()) {
    auto by_storage = it.storages.find(tensor.storage().unsafeGetStorageImpl());
    if (by_storage != it.storages.end()) {
      ref = by_storage->second.output;
      it.values.emplace(impl, ValueEntry{ref, TensorImplRef(tensor.getIntrusivePtr())});
      return ref;
    }
  }
  // A leaf that requires grad (a parameter) is State; any other tensor from outside the
  // iteration is a Feed. The rule reads only the tensor, never the history, so that the same
  // program point classifies alike in every iteration (a batch reused from an earlier
  // iteration stays a feed).
  if (tensor.requires_grad() && tensor.is_leaf()) {
    ref = graph::State{it.next_external++};
  } else {
    ref = graph::Feed{it.next_external++};
    if (it.mode == IterationMode::kCoexecuting) it.region->counters.feeds++;
  }
  it.values.emplace(impl, ValueEntry{ref, TensorImplRef(tensor.getIntrusivePtr())});
  return ref;
}

bool Engine::Impl::build_call(const OpInfo& info, const torch::jit::Stack& stack, Iteration& it,
                              CallView* call) {
  const std::size_t n = info.num_arguments;
  if (stack.size() < n) return false;
  std::vector<graph::Arg> args;
  args.reserve(n);
  auto add_tensor = [&](const at::Tensor& tensor) -> std::int32_t {
    const auto index = static_cast<std::int32_t>(call->inputs.size());
    call->tensor_inputs.push_back({input_ref(tensor, it), identity_meta(tensor)});
    call->inputs.push_back(tensor);
    return index;
  };
  for (std::size_t i = stack.size() - n; i < stack.size(); ++i) {
    const c10::IValue& value = stack[i];
    if (value.isTensor()) {
      const at::Tensor& tensor = value.toTensor();
      if (!tensor.defined()) {
        args.emplace_back(graph::NoneArg{});
        continue;
      }
      if (!tensor_supported(tensor)) return false;
      args.emplace_back(graph::TensorArg{static_cast<std::uint32_t>(add_tensor(tensor))});
    } else if (is_concrete_int_list(value)) {
      args.emplace_back(concrete_int_list(value));
    } else if (value.isTensorList() ||
               (value.isList() && !value.isDoubleList() && !value.isBoolList())) {
      graph::TensorListArg list;
      for (const c10::IValue& element : value.toListRef()) {
        if (element.isNone()) {
          list.inputs.push_back(graph::TensorListArg::kNoTensor);
          continue;
        }
        if (!element.isTensor() || !tensor_supported(element.toTensor())) return false;
        const at::Tensor& tensor = element.toTensor();
        if (!tensor.defined()) {
          list.inputs.push_back(graph::TensorListArg::kNoTensor);
          continue;
        }
        if (tensor.scalar_type() == at::kBool || tensor.scalar_type() == at::kByte) {
          call->bool_index = true;
        }
        list.inputs.push_back(add_tensor(tensor));
      }
      args.emplace_back(std::move(list));
    } else {
      graph::Arg arg;
      if (!scalar_arg(value, &arg)) return false;
      args.push_back(std::move(arg));
    }
  }
  call->identity = graph::OpIdentity(info.name, std::move(args), std::move(call->tensor_inputs),
                                     identity_context(info));
  return true;
}

void Engine::Impl::register_outputs(const torch::jit::Stack& stack, std::uint32_t step,
                                    Iteration& it) {
  std::uint32_t index = 0;
  for (const at::Tensor& out : returned_tensors(stack)) {
    if (out.defined()) {
      const graph::NodeOutput output{step, index};
      it.values.insert_or_assign(out.unsafeGetTensorImpl(),
                                 ValueEntry{output, TensorImplRef(out.getIntrusivePtr())});
      if (out.has_storage()) {
        c10::StorageImpl* storage = out.storage().unsafeGetStorageImpl();
        it.storages.insert_or_assign(storage,
                                     StorageEntry{output, c10::weak_intrusive_ptr<c10::StorageImpl>(
                                                              out.storage().getWeakStorageImpl())});
      }
    }
    ++index;
  }
}

// ---------------------------------------------------------------------------------------------
// Tracing.

void Engine::Impl::trace_op(const OpInfo& info, const c10::OperatorHandle& op,
                            c10::DispatchKeySet keys, torch::jit::Stack* stack, CallView& call) {
  Iteration& it = *iteration;
  // Sizes of the inputs before the op: an op that resizes one (out= into a wrong-sized
  // tensor) must run eagerly in co-execution, where Python needs the new sizes at once.
  std::vector<std::vector<std::int64_t>> sizes_before;
  if (info.mutates) {
    for (const auto& in : call.inputs) sizes_before.push_back(in.sizes().vec());
  }
  graph::OpRecord record;
  if (hooks.source_location) {
    std::string file;
    int line = 0;
    if (hooks.source_location(&file, &line)) record.source = {file, line};
  }
  record.module_path = module_path;

  const auto eager_start = Clock::now();
  run_eagerly(op, keys, stack);
  note_traced_op_time(std::chrono::duration<double>(Clock::now() - eager_start).count());

  const std::vector<at::Tensor> outs = returned_tensors(*stack);
  bool resized = false;
  for (std::size_t k = 0; k < sizes_before.size(); ++k) {
    resized |= !call.inputs[k].sizes().equals(sizes_before[k]);
  }
  for (const at::Tensor& out : outs) {
    graph::OutputInfo output = describe_output(out, call.inputs);
    if (output.alias != graph::AliasKind::kFresh) {
      // Views and in-place results are never made from the record (views run for real), and
      // their offset moves with the input's (a sliding window): keep it out of the merge.
      output.meta.storage_offset = 0;
    }
    if (output.alias == graph::AliasKind::kView) record.flags.is_view_op = true;
    record.outputs.push_back(std::move(output));
  }
  record.flags.is_inplace = info.mutates;
  record.flags.is_random = info.is_random;
  record.flags.is_fetch = info.op_class == OpClass::kFetch;
  record.flags.data_dependent_shape =
      info.data_dependent || resized ||
      (call.bool_index && info.name.qualified() == "aten::index.Tensor");
  record.identity = std::move(call.identity);
  if (config.debug >= 2) debug(2, "trace " + describe_identity(record.identity));

  const std::uint32_t step = it.step++;
  it.trace.append(std::move(record));
  register_outputs(*stack, step, it);
}

// ---------------------------------------------------------------------------------------------
// Co-execution.

const NodeRuntime& Engine::Impl::node_runtime(Region& region, const graph::Node& node) {
  if (region.runtime.size() <= node.id) region.runtime.resize(region.graph.size());
  NodeRuntime& runtime = region.runtime[node.id];
  if (!runtime.outputs) {
    auto outputs = std::make_shared<std::vector<OutputSpec>>();
    for (const auto& out : node.outputs) outputs->push_back(decode_output(out));
    runtime.outputs = std::move(outputs);
  }
  return runtime;
}

void Engine::Impl::coexecute_op(const OpInfo& info, const c10::OperatorHandle& op,
                                c10::DispatchKeySet keys, torch::jit::Stack* stack,
                                CallView& call) {
  Iteration& it = *iteration;
  Region& region = *it.region;
  const graph::Node* node = region.cursor->match(call.identity);
  if (node == nullptr) {
    fall_back(info, call);
    trace_op(info, op, keys, stack, call);
    return;
  }
  it.step = node->step + 1;
  region.counters.ops_coexecuted++;
  if (is_python_side_node(info, *node)) {
    run_eagerly(op, keys, stack);
    register_outputs(*stack, node->step, it);
    return;
  }
  if (is_fetch_node(info, *node) || has_int_feed(*node)) {
    sync();
    region.counters.fetches++;
    region.graph.mark_fetch(node->id);
    run_eagerly(op, keys, stack);
    register_outputs(*stack, node->step, it);
    return;
  }
  queue_op(*node, info, op, keys, stack, call);
}

void Engine::Impl::queue_op(const graph::Node& node, const OpInfo& info,
                            const c10::OperatorHandle& op, c10::DispatchKeySet keys,
                            torch::jit::Stack* stack, CallView& call) {
  Iteration& it = *iteration;
  const NodeRuntime& runtime = node_runtime(*it.region, node);
  const std::vector<OutputSpec>& specs = *runtime.outputs;
  std::vector<at::Tensor> outputs;
  std::vector<c10::weak_intrusive_ptr<c10::StorageImpl>> storages;
  outputs.reserve(specs.size());
  storages.reserve(specs.size());
  std::optional<c10::Device> cuda_device;
  for (const auto& in : call.inputs) {
    if (in.is_cuda()) cuda_device = in.device();
  }
  for (const OutputSpec& spec : specs) {
    if (spec.undefined) {
      outputs.emplace_back();
      storages.emplace_back(c10::intrusive_ptr<c10::StorageImpl>());
    } else if (spec.same_as_input) {
      outputs.push_back(call.inputs.at(spec.input));
      storages.emplace_back(c10::intrusive_ptr<c10::StorageImpl>());
    } else {
      outputs.push_back(make_placeholder(spec, config.poison));
      storages.push_back(outputs.back().storage().getWeakStorageImpl());
      if (spec.device.is_cuda()) cuda_device = spec.device;
    }
  }

  WorkItem item{op, keys, c10::impl::tls_local_dispatch_key_set(),
                c10::AutogradState::get_tls_state()};
  const std::size_t n = info.num_arguments;
  item.arguments.assign(std::make_move_iterator(stack->end() - n),
                        std::make_move_iterator(stack->end()));
  stack->erase(stack->end() - n, stack->end());
  runner.hold_arguments(item);  // use counts stay as in eager (autograd reads them)
  item.specs = runtime.outputs;
  item.storages = std::move(storages);
  if (cuda_device) {
    item.stream = c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA)->getStream(*cuda_device);
  }
  item.region = it.region->id;
  item.node = node.id;

  // The returns, shaped as the schema says: a lone Tensor[] or one Tensor per return.
  const auto& returns = op.schema().returns();
  if (returns.size() == 1 && returns[0].type()->kind() == c10::TypeKind::ListType) {
    stack->emplace_back(c10::List<at::Tensor>(outputs));
  } else {
    for (auto& out : outputs) stack->emplace_back(std::move(out));
  }
  register_outputs(*stack, node.step, it);
  wait_for_runner_room();
  runner.push(std::move(item));
}

void Engine::Impl::note_traced_op_time(double seconds) {
  // Short memory (about 8 ops), like the runner's own mean.
  traced_op_seconds =
      traced_op_seconds == 0.0 ? seconds : traced_op_seconds + (seconds - traced_op_seconds) / 8;
}

void Engine::Impl::wait_for_runner_room() {
  const double max_lag_s = config.max_queued_ms / 1000.0;
  if (runner.has_room(config.max_queued, max_lag_s)) return;
  // Room appears as soon as the runner finishes an op, so a signal that arrives meanwhile
  // (Python's handler only sets a flag) is acted on within about one op's run time.
  auto wait = [&] { runner.wait_for_room(config.max_queued, max_lag_s); };
  if (hooks.wait_without_gil) {
    hooks.wait_without_gil(wait);
  } else {
    wait();
  }
}

void Engine::Impl::fall_back(const OpInfo& info, const CallView& call) {
  Iteration& it = *iteration;
  Region& region = *it.region;
  std::ostringstream reason;
  reason << "region " << region.name << ": fallback at step " << region.cursor->steps()
         << "\n  got:      " << describe_identity(call.identity);
  std::string file;
  int line = 0;
  if (hooks.source_location && hooks.source_location(&file, &line)) {
    reason << "\n  at:       " << file << ":" << line;
  }
  const graph::Node& position = region.cursor->position();
  if (position.children.empty()) {
    reason << "\n  expected: the end of the iteration";
  }
  for (graph::NodeId child : position.children) {
    reason << "\n  expected: " << describe_identity(region.graph.node(child).identity);
  }
  if (!position.is_root()) {
    reason << "\n  after:    " << describe_identity(position.identity);
  }
  last_fallback = reason.str();
  debug(1, last_fallback);
  (void)info;

  sync();  // the confirmed prefix runs; every placeholder is real from here on
  region.counters.fallbacks++;
  it.mode = IterationMode::kFallenBack;
  it.fallback_from = position.id;
  it.step = region.cursor->steps();
  it.trace = graph::Trace{};
}

// ---------------------------------------------------------------------------------------------
// Iterations.

Region* Engine::Impl::find_region(int id) const {
  auto found = regions.find(id);
  return found == regions.end() ? nullptr : found->second.get();
}

void Engine::Impl::begin_iteration(int region_id) {
  if (iteration) {
    ++nested;
    return;
  }
  Region* region = find_region(region_id);
  TORCH_CHECK(region != nullptr, "terra: unknown region id ", region_id);
  last_region = region_id;
  iteration = std::make_unique<Iteration>();
  Iteration& it = *iteration;
  it.region = region;
  it.start = Clock::now();
  if (!config.enabled || region->phase == Phase::kDisabled) {
    it.mode = IterationMode::kInactive;
    return;
  }
  if (region->phase == Phase::kCoexecuting) {
    it.mode = IterationMode::kCoexecuting;
    region->cursor->reset();
  } else {
    it.mode = IterationMode::kTracing;
  }
  runner.set_num_threads(at::get_num_threads());
  set_intercepting(true);
}

void Engine::Impl::end_iteration() {
  if (nested > 0) {
    --nested;
    return;
  }
  if (!iteration) return;
  std::unique_ptr<Iteration> done = std::move(iteration);
  Iteration& it = *done;
  Region& region = *it.region;
  collect_node_times();
  bool repeated = false;
  switch (it.mode) {
    case IterationMode::kInactive:
      break;
    case IterationMode::kTracing: {
      const graph::MergeResult result = region.graph.merge(it.trace, merge_options());
      repeated = result.contained;
      region.counters.iterations_traced++;
      region.traced_iterations++;
      if (repeated && region.traced_iterations >= config.warmup_iterations) {
        region.phase = Phase::kCoexecuting;
        // Backpressure needs an op time before the runner measured one (see
        // wait_for_runner_room): the eager time of this region's traced ops.
        runner.seed_mean_op_time(traced_op_seconds);
        debug(1, "region " + region.name + " co-executes");
      }
      break;
    }
    case IterationMode::kCoexecuting: {
      if (!region.cursor->finish()) {
        region.graph.merge_from(region.cursor->position().id, graph::Trace{}, merge_options());
      }
      repeated = true;
      region.counters.iterations_coexecuted++;
      region.fallbacks_in_row = 0;
      break;
    }
    case IterationMode::kFallenBack: {
      const graph::MergeResult result =
          region.graph.merge_from(it.fallback_from, it.trace, merge_options());
      repeated = result.contained;
      region.counters.iterations_traced++;
      if (++region.fallbacks_in_row >= config.max_fallbacks_in_row) {
        region.phase = Phase::kTracing;
        region.traced_iterations = 0;
        region.fallbacks_in_row = 0;
        debug(1, "region " + region.name + " falls back to tracing");
      }
      break;
    }
  }
  region.last_repeated = repeated;
  if (region.graph.size() > config.max_graph_nodes && region.phase != Phase::kDisabled) {
    region.phase = Phase::kDisabled;
    debug(1, "region " + region.name + " disabled: graph too large");
  }
  region.counters.time_python_s += std::chrono::duration<double>(Clock::now() - it.start).count();
  if (!runner.pending()) set_intercepting(false);
}

void Engine::Impl::abort_iteration() {
  if (nested > 0) {
    --nested;
    return;
  }
  if (!iteration) return;
  std::unique_ptr<Iteration> done = std::move(iteration);
  done->region->counters.iterations_aborted++;
  done->region->counters.time_python_s +=
      std::chrono::duration<double>(Clock::now() - done->start).count();
  // The partial trace is dropped; the graph keeps what earlier iterations merged.
  set_intercepting(false);
  sync();
}

void Engine::Impl::collect_node_times() {
  for (const NodeTime& time : runner.take_node_times()) {
    Region* region = find_region(time.region);
    if (region != nullptr && time.node < region->graph.size()) {
      region->graph.add_time(time.node, time.us);
    }
  }
}

void Engine::Impl::sync() {
  if (runner.pending()) {
    auto wait = [this] { runner.wait_idle(); };
    if (hooks.wait_without_gil) {
      hooks.wait_without_gil(wait);
    } else {
      wait();
    }
  }
  if (std::exception_ptr error = runner.take_error()) std::rethrow_exception(error);
}

// ---------------------------------------------------------------------------------------------
// Engine facade.

const char* phase_name(Phase phase) {
  switch (phase) {
    case Phase::kTracing:
      return "tracing";
    case Phase::kCoexecuting:
      return "coexecuting";
    case Phase::kDisabled:
      return "disabled";
  }
  return "unknown";
}

Counters& Counters::operator+=(const Counters& other) {
  iterations_traced += other.iterations_traced;
  iterations_coexecuted += other.iterations_coexecuted;
  iterations_aborted += other.iterations_aborted;
  fallbacks += other.fallbacks;
  fetches += other.fetches;
  feeds += other.feeds;
  eager_ops += other.eager_ops;
  ops_coexecuted += other.ops_coexecuted;
  time_python_s += other.time_python_s;
  time_graph_s += other.time_graph_s;
  return *this;
}

Engine& Engine::instance() {
  // Never destroyed: the runner thread must outlive every static that may still issue ops.
  static Engine* engine = [] {
    auto* created = new Engine();
    install_interceptor();
    return created;
  }();
  return *engine;
}

Engine::Engine() : impl_(std::make_unique<Impl>()) {}
Engine::~Engine() = default;

void Engine::configure(const EngineConfig& config) {
  impl_->sync();
  impl_->config = config;
}

const EngineConfig& Engine::config() const { return impl_->config; }

void Engine::set_hooks(Hooks hooks) { impl_->hooks = std::move(hooks); }

int Engine::region(const std::string& key, const std::string& name, const std::string& file,
                   int line) {
  auto found = impl_->region_by_key.find(key);
  if (found != impl_->region_by_key.end()) return found->second;
  auto region = std::make_unique<Region>();
  region->id = impl_->next_region_id++;
  region->key = key;
  region->name = name;
  region->file = file;
  region->line = line;
  region->cursor = std::make_unique<graph::Cursor>(region->graph);
  const int id = region->id;
  impl_->region_by_key.emplace(key, id);
  impl_->regions.emplace(id, std::move(region));
  return id;
}

void Engine::begin_iteration(int region_id) { impl_->begin_iteration(region_id); }
void Engine::end_iteration() { impl_->end_iteration(); }
void Engine::abort_iteration() { impl_->abort_iteration(); }

void Engine::sync() {
  InterceptionOff off;
  impl_->sync();
  impl_->collect_node_times();
}

bool Engine::pending() const { return impl_->runner.pending(); }

std::int64_t Engine::queued() const { return impl_->runner.outstanding(); }

void Engine::fetch() {
  if (!impl_->runner.pending()) return;
  if (Region* region = impl_->find_region(impl_->last_region)) region->counters.fetches++;
  sync();
}

bool Engine::pause_interception() {
  const bool was_on = intercepting();
  if (was_on) set_intercepting(false);
  return was_on;
}

void Engine::resume_interception(bool was_on) {
  if (was_on) set_intercepting(true);
}

void Engine::set_enabled(bool enabled) {
  impl_->sync();
  impl_->config.enabled = enabled;
}

bool Engine::is_enabled() const { return impl_->config.enabled; }

void Engine::reset() {
  impl_->sync();
  impl_->collect_node_times();
  impl_->iteration.reset();
  impl_->nested = 0;
  impl_->regions.clear();
  impl_->region_by_key.clear();
  impl_->last_region = -1;
  impl_->last_fallback.clear();
  set_intercepting(false);
}

std::string Engine::explain() const {
  if (impl_->last_fallback.empty()) return "terra: no fallback so far";
  return impl_->last_fallback;
}

void Engine::set_module_path(const std::string& path) { impl_->module_path = path; }

EngineStats Engine::stats() const {
  EngineStats stats;
  for (const auto& [id, region] : impl_->regions) {
    RegionStats entry;
    entry.id = id;
    entry.key = region->key;
    entry.name = region->name;
    entry.file = region->file;
    entry.line = region->line;
    entry.phase = phase_name(region->phase);
    entry.graph_nodes = region->graph.size();
    entry.graph_branches = region->graph.branch_count();
    entry.counters = region->counters;
    entry.counters.time_graph_s = impl_->runner.busy_seconds(id);
    stats.total += entry.counters;
    stats.graph_nodes += entry.graph_nodes;
    stats.graph_branches += entry.graph_branches;
    stats.regions.push_back(std::move(entry));
  }
  return stats;
}

std::string Engine::graph_json(int region_id) const {
  if (region_id < 0) region_id = impl_->last_region;
  const Region* region = impl_->find_region(region_id);
  if (region == nullptr) return "";
  impl_->collect_node_times();
  graph::RegionInfo info{"r" + std::to_string(region->id), region->name, region->file,
                         region->line};
  nlohmann::json stats = {
      {"iterations_traced", region->counters.iterations_traced},
      {"iterations_coexecuted", region->counters.iterations_coexecuted},
      {"fallbacks", region->counters.fallbacks},
      {"fetches", region->counters.fetches},
      {"feeds", region->counters.feeds},
      {"phase", phase_name(region->phase)},
  };
  return graph::to_json_string(region->graph, info, stats);
}

Phase Engine::phase(int region_id) const {
  const Region* region = impl_->find_region(region_id);
  TORCH_CHECK(region != nullptr, "terra: unknown region id ", region_id);
  return region->phase;
}

bool Engine::last_iteration_repeated(int region_id) const {
  const Region* region = impl_->find_region(region_id);
  return region != nullptr && region->last_repeated;
}

int Engine::current_region() const { return impl_->last_region; }

void Engine::hold_runner(bool hold) { impl_->runner.set_hold(hold); }

}  // namespace terra::coexec
