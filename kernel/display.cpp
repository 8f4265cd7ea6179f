// Display facility: rich output, execution results, errors and clear_output, each
// published after the text output written before it.
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "kernel/fd_capture.hpp"
#include "kernel/interpreter.hpp"
#include "kernel/native_module.hpp"
#include "kernel/py_json.hpp"

namespace terra::kernel {
namespace {

// Streams go through the reader thread; publish them first so that output keeps the
// order in which the cell produced it.
void flush_streams_first() {
  py::gil_scoped_release release;
  interpreter::instance().output().drain();
}

}  // namespace

void bind_display(py::module_& m) {
  m.def(
      "display_data",
      [](const py::dict& data, const py::dict& metadata, const py::dict& transient, bool update) {
        flush_streams_first();
        auto& interp = interpreter::instance();
        if (update) {
          interp.update_display_data(to_json(data), to_json(metadata), to_json(transient));
        } else {
          interp.display_data(to_json(data), to_json(metadata), to_json(transient));
        }
      },
      py::arg("data"), py::arg("metadata"), py::arg("transient"), py::arg("update") = false,
      "Publish display_data (or update_display_data).");
  m.def(
      "execute_result",
      [](int execution_count, const py::dict& data, const py::dict& metadata) {
        flush_streams_first();
        interpreter::instance().publish_execution_result(execution_count, to_json(data),
                                                         to_json(metadata));
      },
      "Publish the execute_result of a cell.");
  m.def(
      "error",
      [](const std::string& ename, const std::string& evalue,
         const std::vector<std::string>& traceback) {
        flush_streams_first();
        interpreter::instance().publish_execution_error(ename, evalue, traceback);
      },
      "Publish an error message.");
  m.def(
      "clear_output",
      [](bool wait) {
        flush_streams_first();
        interpreter::instance().clear_output(wait);
      },
      py::arg("wait") = false, "Publish clear_output.");
  m.def(
      "parent_header", [] { return from_json(interpreter::instance().parent_header()); },
      "Header of the shell request being handled (where output is attributed).");
}

}  // namespace terra::kernel
