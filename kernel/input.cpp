// Input facility: input() and getpass() ask the front end over the stdin channel.
#include <memory>
#include <optional>
#include <string>

#include "kernel/interpreter.hpp"
#include "kernel/interrupt.hpp"
#include "kernel/native_module.hpp"

namespace terra::kernel {
namespace {

// Sends input_request and blocks (without the GIL) until the reply arrives. An interrupt
// wakes the blocking receive; the KeyboardInterrupt it tripped is raised here.
std::string request_input(const std::string& prompt, bool password) {
  auto& interp = interpreter::instance();
  auto value = std::make_shared<std::optional<std::string>>();
  interp.register_input_handler([value](const std::string& v) { *value = v; });
  std::string failure;
  {
    py::gil_scoped_release release;
    interrupt::stdin_wait_scope waiting;
    try {
      interp.input_request(prompt, password);
    } catch (const std::exception& e) {
      failure = e.what();
    }
  }
  interp.register_input_handler(nullptr);
  if (value->has_value()) return **value;
  if (PyErr_CheckSignals() != 0) throw py::error_already_set();
  throw std::runtime_error("input request failed: " + (failure.empty() ? "no reply" : failure));
}

}  // namespace

void bind_input(py::module_& m) {
  m.def("input_request", &request_input, py::arg("prompt"), py::arg("password") = false,
        "Ask the front end for a line of input (stdin channel); returns it.");
}

}  // namespace terra::kernel
