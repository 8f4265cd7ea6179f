// Engine::Impl::handle: where every intercepted op arrives (the boxed kernel on PrivateUse1,
// interceptor.cpp). Outside an iteration the op runs eagerly; inside, it is traced or
// co-executed; a call the IR cannot represent runs eagerly, unrecorded.
#include <iostream>
#include <string>

#include "engine_impl.h"
#include "interceptor.h"

namespace terra::coexec {

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
  if (on_other_thread()) {
    run_for_other_thread(op, keys, stack);
    return;
  }
  if (runner.warnings().any()) reissue_runner_warnings();
  Iteration* it = iteration.get();
  if (it == nullptr || it->mode == IterationMode::kInactive) {
    // Between iterations interception stays on only while confirmed work is queued: an op
    // then waits for what it reads (or for everything, if it writes or draws random numbers).
    wait_before_running_now(op_info(op), *stack);
    if (it == nullptr && !runner.pending()) off.keep_off();
    run_eagerly(op, keys, stack);
    return;
  }
  if (runner.failed()) sync();  // a runner error surfaces at the next op
  const OpInfo& info = op_info(op);
  if (info.passthrough) {
    run_eagerly(op, keys, stack);
    return;
  }
  if (it->mode == IterationMode::kCoexecuting) {
    if (const graph::Node* node = match_compiled(info, *stack, *it)) {
      coexecute_matched(*node, info, op, keys, stack);
      return;
    }
  } else if (it->mode == IterationMode::kTracing && it->trace.records.empty() &&
             trace_as_followed(info, op, keys, stack)) {
    return;  // still on a path of the graph: recorded as its node
  }
  CallView call;
  if (!build_call(info, *stack, *it, &call)) {
    // Unsupported tensors or arguments: eager after a sync, unrecorded (outputs become feeds).
    if (config.debug >= 2) debug(2, "eager (unsupported) " + info.name.qualified());
    sync();  // queued work (also from an earlier iteration) may write what it reads
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

}  // namespace terra::coexec
