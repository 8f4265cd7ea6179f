// Stream facility: Python asks the fd capture to publish what was written so far.
#include <unistd.h>

#include <string>

#include "kernel/fd_capture.hpp"
#include "kernel/interpreter.hpp"
#include "kernel/native_module.hpp"

namespace terra::kernel {

void bind_stream(py::module_& m) {
  m.def(
      "flush_output",
      [] {
        py::gil_scoped_release release;
        interpreter::instance().output().drain();
      },
      "Publish everything written to fds 1 and 2 so far (C stdio buffers included).");
  m.def(
      "restore_fds", [] { interpreter::instance().output().restore_fds(); },
      "Point fds 1 and 2 at the kernel's pipes again if user code closed them.");
  m.def(
      "log",
      [](const std::string& text) {
        const std::string line = text + "\n";
        (void)!::write(interpreter::instance().output().log_fd(), line.data(), line.size());
      },
      "Write a line to the kernel log (the process's original stderr), never to a cell.");
}

}  // namespace terra::kernel
