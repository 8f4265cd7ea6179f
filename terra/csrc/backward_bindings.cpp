// bind_backward: terra._C.begin_backward / end_backward, the engine's hook around the
// autograd engine (terra/hooks.py; terra/coexec/backward.h). Converts Python tensors, so it
// needs torch's Python headers, unlike the other binding files.
#include <pybind11/pybind11.h>
#include <torch/csrc/autograd/python_variable.h>

#include <vector>

#include "bindings.h"
#include "terra/coexec/backward.h"
#include "terra/coexec/engine.h"

namespace py = pybind11;

namespace terra::python {
namespace {

// "run", "recording" or "replayed" (what the caller does next: coexec::BackwardStart).
const char* begin_backward(const py::tuple& roots, bool retain_graph) {
  std::vector<at::Tensor> tensors;
  tensors.reserve(roots.size());
  for (const py::handle& root : roots) {
    // A GradientEdge, or a tensor subclass with its own __torch_function__: as usual.
    if (!THPVariable_CheckExact(root.ptr())) return "run";
    tensors.push_back(THPVariable_Unpack(root.ptr()));
  }
  switch (coexec::begin_backward(coexec::Engine::instance(), tensors, retain_graph)) {
    case coexec::BackwardStart::kRecording:
      return "recording";
    case coexec::BackwardStart::kReplayed:
      return "replayed";
    case coexec::BackwardStart::kRun:
      break;
  }
  return "run";
}

}  // namespace

void bind_backward(py::module_& m) {
  m.def("begin_backward", &begin_backward, py::arg("roots"), py::arg("retain_graph"),
        "roots.backward() is about to run: 'run' it, run it while 'recording' (then call "
        "end_backward), or nothing to do ('replayed').");
  m.def(
      "end_backward",
      [](bool completed) { coexec::end_backward(coexec::Engine::instance(), completed); },
      py::arg("completed"), "The autograd engine returned (completed) or raised.");
  m.def(
      "note_saved_tensor_hooks",
      [] { coexec::note_saved_tensor_hooks(coexec::Engine::instance()); },
      "Saved-tensor hooks were pushed: this iteration's backward passes are not replayed.");
}

}  // namespace terra::python
