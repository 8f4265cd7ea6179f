// Walks the tensors among an op's arguments on a boxed stack, in the order build_call gives
// them to an identity's inputs (tensor lists and optional-tensor lists flattened, undefined
// tensors and Nones skipped).
#pragma once

#include <ATen/core/stack.h>

#include <cstddef>

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

// Calls `visit(tensor)` for every defined tensor among the last `n` values of `stack`.
template <class Visit>
void for_each_tensor_argument(const torch::jit::Stack& stack, std::size_t n, Visit&& visit) {
  for (std::size_t i = stack.size() - n; i < stack.size(); ++i) for_each_tensor_in(stack[i], visit);
}

}  // namespace terra::coexec
