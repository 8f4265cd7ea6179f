// Registration of the interception kernels with the dispatcher (see interceptor.h).
#include "interceptor.h"

#include <torch/library.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace terra::coexec {
namespace {

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
  return op.hasKernelForDispatchKey(c10::DispatchKey::CompositeExplicitAutograd) ||
         op.hasKernelForDispatchKey(c10::DispatchKey::CompositeExplicitAutogradNonFunctional);
}

void register_explicit_kernels() {
  // One IMPL library per namespace; kept alive for the life of the process.
  static std::map<std::string, std::unique_ptr<torch::Library>> libraries;
  for (const c10::OperatorName& name : c10::Dispatcher::singleton().getAllOpNames()) {
    auto op = c10::Dispatcher::singleton().findOp(name);
    if (!op || !needs_explicit_kernel(*op)) continue;
    const auto ns = name.getNamespace();
    if (!ns) continue;
    std::string ns_name(*ns);
    auto& library = libraries[ns_name];
    if (!library) {
      library = std::make_unique<torch::Library>(torch::Library::IMPL, ns_name,
                                                 c10::DispatchKey::PrivateUse1, __FILE__, __LINE__);
    }
    std::string qualified = name.name;
    if (!name.overload_name.empty()) qualified += "." + name.overload_name;
    library->impl(qualified.c_str(), torch::CppFunction::makeFromBoxedFunction<&intercept_op>());
  }
}

}  // namespace

void install_interceptor() {
  static std::once_flag once;
  std::call_once(once, [] {
    static torch::Library fallback(torch::Library::IMPL, "_", c10::DispatchKey::PrivateUse1,
                                   __FILE__, __LINE__);
    fallback.fallback(torch::CppFunction::makeFromBoxedFunction<&intercept_op>());
    register_explicit_kernels();
  });
}

}  // namespace terra::coexec
