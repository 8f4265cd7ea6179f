// bench._dispatch_floor: the least an interception at the dispatcher can cost
// (bench/dispatch_floor.py).
//
// A boxed kernel on PrivateUse1, reached the way Terra's engine is reached (the key in the
// thread-local included set; interceptor.h), that does none of the engine's work: it answers
// with the op's first argument ("existing"), or with a fresh tensor of the first argument's
// layout over a storage without memory ("placeholder", what co-execution must at least hand
// back to Python). What Python pays for `torch.add` through it is the binding, autograd, the
// boxing and the result's wrapping: the floor under the engine's own per-op work.
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <pybind11/pybind11.h>
#include <torch/library.h>

#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>

namespace {

enum class Answer { kExisting, kPlaceholder };

std::atomic<Answer>& answer() {
  static std::atomic<Answer> value{Answer::kExisting};
  return value;
}

at::Tensor placeholder_like(const at::Tensor& tensor) {
  c10::Allocator* allocator = c10::GetAllocator(tensor.device().type());
  auto storage = c10::make_intrusive<c10::StorageImpl>(
      c10::StorageImpl::use_byte_size_t(), static_cast<std::int64_t>(tensor.nbytes()),
      c10::DataPtr(nullptr, tensor.device()), allocator, /*resizable=*/true);
  at::Tensor out = at::detail::make_tensor<c10::TensorImpl>(
      c10::Storage(std::move(storage)), c10::DispatchKeySet(c10::DispatchKey::CPU), tensor.dtype());
  out.unsafeGetTensorImpl()->set_sizes_and_strides(tensor.sizes(), tensor.strides(), 0);
  return out;
}

void floor_kernel(const c10::OperatorHandle& op, c10::DispatchKeySet, torch::jit::Stack* stack) {
  const std::size_t n = op.schema().arguments().size();
  at::Tensor first = (*stack)[stack->size() - n].toTensor();
  stack->erase(stack->end() - static_cast<std::ptrdiff_t>(n), stack->end());
  if (answer().load(std::memory_order_relaxed) == Answer::kExisting) {
    stack->emplace_back(std::move(first));
  } else {
    stack->emplace_back(placeholder_like(first));
  }
}

void install(const std::string& mode) {
  if (mode == "existing") {
    answer() = Answer::kExisting;
  } else if (mode == "placeholder") {
    answer() = Answer::kPlaceholder;
  } else {
    throw std::invalid_argument("mode is 'existing' or 'placeholder', not '" + mode + "'");
  }
  // Kept for the life of the process, like Terra's own registrations (which this one would
  // collide with: never import terra in the same process).
  static const auto registered = [] {
    auto fallback = std::make_unique<torch::Library>(
        torch::Library::IMPL, "_", c10::DispatchKey::PrivateUse1, __FILE__, __LINE__);
    fallback->fallback(torch::CppFunction::makeFromBoxedFunction<&floor_kernel>());
    // add.Tensor's CompositeExplicitAutogradNonFunctional kernel would answer PrivateUse1
    // before the fallback (as interceptor.cpp explains for the engine).
    auto aten = std::make_unique<torch::Library>(torch::Library::IMPL, "aten",
                                                 c10::DispatchKey::PrivateUse1, __FILE__, __LINE__);
    aten->impl("add.Tensor", torch::CppFunction::makeFromBoxedFunction<&floor_kernel>());
    return std::make_pair(std::move(fallback), std::move(aten));
  }();
  (void)registered;
}

}  // namespace

PYBIND11_MODULE(_dispatch_floor, m) {
  m.doc() = "The cost floor of an interception at the dispatcher (bench/dispatch_floor.py).";
  m.def("install", &install, pybind11::arg("mode"),
        "Answers every op reaching PrivateUse1 with its first argument ('existing') or a "
        "memoryless tensor of its layout ('placeholder').");
}
