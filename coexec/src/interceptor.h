// Interception at the ATen dispatcher (DESIGN §4): a boxed kernel on PrivateUse1 that the
// thread-local *included* key set turns into a C++ dispatch mode while an iteration runs.
#pragma once

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>
#include <c10/core/impl/LocalDispatchKeySet.h>

namespace terra::coexec {

// The function every intercepted op reaches; defined by the engine (engine.cpp).
void intercept_op(const c10::OperatorHandle& op, c10::DispatchKeySet keys,
                  torch::jit::Stack* stack);

// Registers the boxed fallback on PrivateUse1 and, for every operator with a
// CompositeExplicitAutograd(NonFunctional) kernel, an explicit PrivateUse1 kernel, so that
// the op the program called is seen rather than its decomposition. Idempotent.
void install_interceptor();

// Turns interception on or off for the calling thread (zero cost while off). The TLS set is
// rewritten directly: tls_set_dispatch_key_included(PrivateUse1, false) clears only the
// Dense functionality bit and leaves the PrivateUse1 backend bit behind, which still routes
// every nested CPU call back to the interception kernel (measured on torch 2.11).
inline void set_intercepting(bool on) {
  c10::impl::LocalDispatchKeySet tls = c10::impl::tls_local_dispatch_key_set();
  const c10::DispatchKeySet key(c10::DispatchKey::PrivateUse1);
  // Raw bit arithmetic: DispatchKeySet's operator- and remove() keep backend bits as well.
  tls.included_ = on ? (tls.included_ | key)
                     : c10::DispatchKeySet(c10::DispatchKeySet::RAW,
                                           tls.included_.raw_repr() & ~key.raw_repr());
  c10::impl::_force_tls_local_dispatch_key_set(tls);
}
inline bool intercepting() {
  return c10::impl::tls_local_dispatch_key_set().included_.has_backend(
      c10::BackendComponent::PrivateUse1Bit);
}

// Switches interception off for a scope (the engine's own work, redispatches) and restores it.
class InterceptionOff {
 public:
  InterceptionOff() : was_on_(intercepting()) {
    if (was_on_) set_intercepting(false);
  }
  ~InterceptionOff() {
    if (was_on_) set_intercepting(true);
  }
  InterceptionOff(const InterceptionOff&) = delete;
  InterceptionOff& operator=(const InterceptionOff&) = delete;
  // Keeps interception off after the scope (the engine left its last iteration).
  void keep_off() { was_on_ = false; }

 private:
  bool was_on_;
};

}  // namespace terra::coexec
