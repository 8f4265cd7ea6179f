// The program's other threads. One thread owns the engine: the one that began the last
// iteration (the program's main loop). Its ops may return placeholders, whose memory the
// GraphRunner fills later, and may leave writes queued (an optimizer step). Another thread that
// reads those tensors (a logger fed through a queue.Queue, a checkpoint writer) saw finished
// values in eager, because the owner computed them before handing them over. Its ops are not
// the owner's to trace, so they run eagerly, but only once every op the owner queued so far
// has finished: whatever the owner handed over was queued before the handing over.
//
// Interception is thread-local (interceptor.h), so such a thread is intercepted only once
// adopted: terra/hooks.py adopts every threading.Thread as it starts. Its ops then pass
// through the boxed kernel even when nothing is queued, at the cost of a redispatch.
#include <c10/core/impl/LocalDispatchKeySet.h>

#include <algorithm>
#include <typeinfo>

#include "engine_impl.h"
#include "interceptor.h"
#include "placeholder_storage.h"
#include "stack_arguments.h"

namespace terra::coexec {
namespace {

thread_local bool adopted = false;

// A placeholder the runner never filled: its op failed (the error is raised on the owner's
// thread), and ops queued after it were dropped. Reading it would read no memory at all.
bool is_unfilled_placeholder(const at::Tensor& tensor) {
  if (!tensor.has_storage()) return false;
  const c10::StorageImpl* storage = tensor.storage().unsafeGetStorageImpl();
  return typeid(*storage) == typeid(PlaceholderStorage) && storage->data() == nullptr &&
         storage->nbytes() > 0;
}

}  // namespace

void Engine::adopt_thread() {
  adopted = true;
  set_intercepting(true);
}

bool Engine::Impl::on_other_thread() const {
  return adopted && owner_thread.load(std::memory_order_relaxed) != std::this_thread::get_id();
}

void Engine::Impl::wait_for_owner_ops() {
  auto wait = [&] { runner.wait_for_committed_from_any_thread(); };
  if (hooks.wait_without_gil) {
    hooks.wait_without_gil(wait);
  } else {
    wait();
  }
}

void Engine::Impl::run_for_other_thread(const c10::OperatorHandle& op, c10::DispatchKeySet keys,
                                        torch::jit::Stack* stack) {
  wait_for_owner_ops();
  const std::size_t n = std::min(stack->size(), op.schema().arguments().size());
  for_each_tensor_argument(*stack, n, [&](const at::Tensor& tensor) {
    TORCH_CHECK(!is_unfilled_placeholder(tensor), "terra: ", op.operator_name(),
                " on another thread reads a tensor whose co-executed op failed; the error is "
                "raised on the thread that ran the loop");
  });
  run_eagerly(op, keys, stack);
}

}  // namespace terra::coexec
