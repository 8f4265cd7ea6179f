// Walks the tensors among an op's arguments on a boxed stack, in the order build_call gives
// them to an identity's inputs (tensor lists and optional-tensor lists flattened, undefined
// tensors and Nones skipped).
#pragma once

#include <ATen/core/stack.h>

#include <cstddef>
#include <optional>

namespace terra::coexec {

// Calls `visit(tensor)` for every defined tensor in one argument: a Tensor, an optional
// Tensor, or a list of (optional) tensors.
template <class Visit>
void for_each_tensor_in(const c10::IValue& value, Visit&& visit) {
  if (value.isTensor()) {
    if (value.toTensor().defined()) visit(value.toTensor());
  } else if (value.isTensorList() || value.isList()) {
    for (const c10::IValue& element : value.toListRef()) {
      if (element.isTensor() && element.toTensor().defined()) visit(element.toTensor());
    }
  }
}

// Calls `replace(tensor)` for every defined tensor in one argument (as for_each_tensor_in)
// and puts the tensor it returns, if any, in that tensor's place. Lists are changed in place.
template <class Replace>
void replace_tensors_in(c10::IValue& value, Replace&& replace) {
  if (value.isTensor()) {
    if (!value.toTensor().defined()) return;
    if (std::optional<at::Tensor> replaced = replace(value.toTensor())) value = *replaced;
  } else if (value.isTensorList()) {
    c10::List<at::Tensor> tensors = value.toTensorList();
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      const at::Tensor tensor = tensors.get(i);
      if (!tensor.defined()) continue;
      if (std::optional<at::Tensor> replaced = replace(tensor)) tensors.set(i, *replaced);
    }
  } else if (value.isList()) {
    c10::List<c10::IValue> items = value.toList();
    for (std::size_t i = 0; i < items.size(); ++i) {
      const c10::IValue item = items.get(i);
      if (!item.isTensor() || !item.toTensor().defined()) continue;
      if (std::optional<at::Tensor> replaced = replace(item.toTensor())) items.set(i, *replaced);
    }
  }
}

// Calls `visit(tensor)` for every defined tensor among the last `n` values of `stack`.
template <class Visit>
void for_each_tensor_argument(const torch::jit::Stack& stack, std::size_t n, Visit&& visit) {
  for (std::size_t i = stack.size() - n; i < stack.size(); ++i) for_each_tensor_in(stack[i], visit);
}

}  // namespace terra::coexec
