// Registration of the interception kernels with the dispatcher (see interceptor.h).
#include "interceptor.h"

#include <torch/library.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace terra::coexec {
namespace {

bool has_composite_explicit_kernel(const c10::OperatorHandle& op) {
  return op.hasKernelForDispatchKey(c10::DispatchKey::CompositeExplicitAutograd) ||
         op.hasKernelForDispatchKey(c10::DispatchKey::CompositeExplicitAutogradNonFunctional);
}

// An explicit kernel on PrivateUse1 is needed where a composite kernel would otherwise answer
// the key before the fallback does:
// - CompositeExplicitAutograd(NonFunctional) ops: that kernel would run (decomposed) on the
//   Python thread;
// - ops with a CompositeImplicitAutograd kernel *and* a CPU or CUDA kernel (silu_backward,
//   ...): eager CPU skips the composite (a backend kernel exists), but without a PrivateUse1
//   kernel the composite fills AutogradPrivateUse1 and the op decomposes, with different
//   rounding. A PrivateUse1 kernel makes the autograd entry the one CPU has.
// Ops with only a CompositeImplicitAutograd kernel are left alone: a backend kernel would take
// autograd away from them (DESIGN §4).
bool needs_explicit_kernel(const c10::OperatorHandle& op) {
  if (!op.hasSchema()) return false;
  if (op.hasKernelForDispatchKey(c10::DispatchKey::PrivateUse1)) return false;
  const bool backend = op.hasKernelForDispatchKey(c10::DispatchKey::CPU) ||
                       op.hasKernelForDispatchKey(c10::DispatchKey::CUDA);
  if (op.hasKernelForDispatchKey(c10::DispatchKey::CompositeImplicitAutograd)) return backend;
  return has_composite_explicit_kernel(op);
}

// A sparse, sparse-compressed (CSR, CSC, BSR, BSC) or quantized tensor in an iteration
// dispatches to that functionality's PrivateUse1 key (the included key's backend bit), where
// a CompositeExplicitAutograd kernel would answer before the fallback: its dense
// decomposition (AccumulateGrad's clone of a sparse gradient: empty_like + copy_, "Cannot
// access storage of SparseTensorImpl") or a kernel for another layout (`values()` of a CSR
// tensor: "values expected sparse tensor layout but got SparseCsr"; `clone()` of a quantized
// one: "empty_strided not supported on quantized tensors"). The interception kernel there
// runs the op eagerly, on the tensor's own backend key (SparseCsrCPU, QuantizedCPU, ...).
constexpr c10::DispatchKey kNonDenseKeys[] = {c10::DispatchKey::SparsePrivateUse1,
                                              c10::DispatchKey::SparseCsrPrivateUse1,
                                              c10::DispatchKey::QuantizedPrivateUse1};

bool needs_non_dense_kernel(const c10::OperatorHandle& op, c10::DispatchKey key) {
  if (!op.hasSchema()) return false;
  if (op.hasKernelForDispatchKey(key)) return false;
  return has_composite_explicit_kernel(op);
}

void register_explicit_kernels() {
  // One IMPL library per namespace and key; kept alive for the life of the process.
  static std::map<std::pair<std::string, c10::DispatchKey>, std::unique_ptr<torch::Library>>
      libraries;
  auto impl = [](const c10::OperatorName& name, c10::DispatchKey key) {
    const auto ns = name.getNamespace();
    if (!ns) return;
    std::string ns_name(*ns);
    auto& library = libraries[{ns_name, key}];
    if (!library) {
      library =
          std::make_unique<torch::Library>(torch::Library::IMPL, ns_name, key, __FILE__, __LINE__);
    }
    std::string qualified = name.name;
    if (!name.overload_name.empty()) qualified += "." + name.overload_name;
    library->impl(qualified.c_str(), torch::CppFunction::makeFromBoxedFunction<&intercept_op>());
  };
  for (const c10::OperatorName& name : c10::Dispatcher::singleton().getAllOpNames()) {
    auto op = c10::Dispatcher::singleton().findOp(name);
    if (!op) continue;
    if (needs_explicit_kernel(*op)) impl(name, c10::DispatchKey::PrivateUse1);
    for (c10::DispatchKey key : kNonDenseKeys) {
      if (needs_non_dense_kernel(*op, key)) impl(name, key);
    }
  }
}

}  // namespace

void install_interceptor() {
  static std::once_flag once;
  std::call_once(once, [] {
    // The fallback on PrivateUse1 answers every op (DESIGN §4). With PrivateUse1 in the
    // included set, a factory of a sparse, sparse-compressed, nested or quantized tensor
    // dispatches to that functionality's PrivateUse1 key, where nothing else is registered
    // ("Could not run ... SparsePrivateUse1"): the same fallback answers there, and the
    // engine runs such ops eagerly (tensor_supported).
    static std::vector<std::unique_ptr<torch::Library>> fallbacks;
    for (c10::DispatchKey key :
         {c10::DispatchKey::PrivateUse1, c10::DispatchKey::SparsePrivateUse1,
          c10::DispatchKey::SparseCsrPrivateUse1, c10::DispatchKey::NestedTensorPrivateUse1,
          c10::DispatchKey::QuantizedPrivateUse1}) {
      fallbacks.push_back(
          std::make_unique<torch::Library>(torch::Library::IMPL, "_", key, __FILE__, __LINE__));
      fallbacks.back()->fallback(torch::CppFunction::makeFromBoxedFunction<&intercept_op>());
    }
    register_explicit_kernels();
  });
}

}  // namespace terra::coexec
