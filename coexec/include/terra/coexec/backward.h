// Backward passes in co-executed iterations (docs/architecture.md, "Backward passes
// replayed"): the binding layer's hook around the autograd engine (terra/hooks.py wraps
// torch.autograd's _engine_run_backward for `backward()` calls that accumulate into leaves).
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

namespace terra::coexec {

class Engine;

enum class BackwardStart {
  kRun,        // run the autograd engine as usual
  kRecording,  // run it, then call end_backward (its ops are being recorded)
  kReplayed,   // done: the engine issued the recorded ops; do not run the autograd engine
};

// `roots.backward()` (create_graph false, no `inputs`) is about to run on the calling thread.
BackwardStart begin_backward(Engine& engine, const std::vector<at::Tensor>& roots,
                             bool retain_graph);
// The autograd engine returned (`completed`) or raised after begin_backward said kRecording.
void end_backward(Engine& engine, bool completed);

// Saved-tensor hooks (torch.autograd.graph.saved_tensors_hooks, checkpointing) were pushed:
// the current iteration's backward passes run Python and are not replayed.
void note_saved_tensor_hooks(Engine& engine);

}  // namespace terra::coexec
