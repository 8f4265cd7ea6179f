// The identity of a boxed call (DESIGN §3 "Node identity"): operator, non-tensor arguments,
// where each tensor input came from (node output, state, feed) and its metadata, plus
// engine-defined context bits. Built for every traced op and for co-executed ops that no
// compiled pattern could decide (call_pattern.h is the hot path).
#include "call_identity.h"

#include <c10/core/DefaultDtype.h>
#include <c10/core/GradMode.h>

#include <sstream>

#include "call_pattern.h"
#include "engine_impl.h"

namespace terra::coexec {
namespace {

graph::Arg other_arg(const std::string& text) { return graph::Arg(graph::OtherArg{text}); }

// The metadata of an input as identity compares it. The storage offset is left out: it
// never changes an output's metadata, and batches sliced from one buffer differ in it.
graph::TensorMeta identity_meta(const at::Tensor& tensor) {
  graph::TensorMeta meta = tensor_meta(tensor);
  meta.storage_offset = 0;
  return meta;
}

graph::Arg concrete_int_list(const c10::IValue& value) {
  graph::IntList ints;
  if (value.isIntList()) {
    auto list = value.toIntList();
    ints.assign(list.begin(), list.end());
  } else {
    for (const c10::IValue& element : value.toListRef()) ints.push_back(concrete_int(element));
  }
  return graph::Arg(std::move(ints));
}

// Non-tensor argument -> Arg; false when the value cannot be part of an identity.
bool scalar_arg(const c10::IValue& value, graph::Arg* arg) {
  if (value.isNone()) {
    *arg = graph::Arg(graph::NoneArg{});
  } else if (value.isBool()) {
    *arg = graph::Arg(value.toBool());
  } else if (is_concrete_int(value)) {
    *arg = graph::Arg(concrete_int(value));
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

}  // namespace

std::uint64_t identity_context(const OpInfo& /*info*/) {
  std::uint64_t context = c10::GradMode::is_enabled() ? 1 : 0;
  // Factories, and ops that promote integers to floats (int / int, sqrt of an int), take
  // their result's dtype from the default dtype: a change makes other nodes.
  context |= static_cast<std::uint64_t>(c10::get_default_dtype_as_scalartype()) + 1 << 8;
  return context;
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

// ---------------------------------------------------------------------------------------------
// Provenance of tensors and the identity of a call.

graph::InputRef Engine::Impl::input_ref(const at::Tensor& tensor, Iteration& it) {
  c10::TensorImpl* impl = tensor.unsafeGetTensorImpl();
  if (const ValueEntry* found = it.values.find(impl)) return found->ref;
  graph::InputRef ref;
  if (tensor.has_storage()) {
    if (const StorageEntry* by_storage =
            it.storages.find(tensor.storage().unsafeGetStorageImpl())) {
      ref = by_storage->output;
      it.values.insert_or_assign(
          impl, ValueEntry{ref, TensorImplRef(tensor.getIntrusivePtr()), /*by_storage=*/true});
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
  it.values.insert_or_assign(impl, ValueEntry{ref, TensorImplRef(tensor.getIntrusivePtr())});
  return ref;
}

bool Engine::Impl::build_call(const OpInfo& info, const torch::jit::Stack& stack, Iteration& it,
                              CallView* call) {
  const std::size_t n = info.num_arguments;
  if (stack.size() < n) return false;
  std::vector<graph::Arg> args;
  args.reserve(n);
  call->tensor_inputs.reserve(n);
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
      call->explicit_generator |= value.isGenerator();
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
  auto record = [&](const at::Tensor& out) {
    if (out.defined()) {
      const graph::NodeOutput output{step, index};
      it.values.insert_or_assign(out.unsafeGetTensorImpl(),
                                 ValueEntry{output, TensorImplRef(out.getIntrusivePtr())});
      c10::StorageImpl* storage = nullptr;
      if (out.has_storage()) {
        storage = out.storage().unsafeGetStorageImpl();
        it.storages.insert_or_assign(storage,
                                     StorageEntry{output, c10::weak_intrusive_ptr<c10::StorageImpl>(
                                                              out.storage().getWeakStorageImpl())});
      }
      // Only where Python's own thread allocates the outputs' memory: a co-executed op's
      // memory comes from the runner thread (another malloc arena, no pins among it), and
      // forgetting placeholders one by one measured 0.4 us per op slower there.
      if (it.mode != IterationMode::kCoexecuting) {
        it.note_recent_output(out.unsafeGetTensorImpl(), storage);
      }
    }
    ++index;
  };
  // The flattened returns, as returned_tensors() lists them, without building the list.
  for (const auto& value : stack) {
    if (value.isTensor()) {
      record(value.toTensor());
    } else if (value.isTensorList()) {
      for (const at::Tensor& t : value.toTensorList()) record(t);
    } else if (value.isNone()) {
      ++index;
    }
  }
}

}  // namespace terra::coexec
