#include "kernel/interpreter.hpp"

#include <pybind11/embed.h>

#include <iostream>
#include <utility>
#include <vector>

#include "kernel/fd_capture.hpp"
#include "kernel/interrupt.hpp"
#include "kernel/native_module.hpp"
#include "kernel/py_json.hpp"
#include "xeus/xhelper.hpp"

namespace terra::kernel {
namespace {

// A Python exception described the way Jupyter error messages carry it.
struct python_failure {
  std::string ename;
  std::string evalue;
  std::vector<std::string> traceback;
};

python_failure describe(py::error_already_set& error) {
  python_failure failure;
  try {
    failure.ename = py::str(error.type().attr("__name__"));
    failure.evalue = py::str(error.value());
    py::object lines = py::module_::import("traceback")
                           .attr("format_exception")(error.type(), error.value(), error.trace());
    for (auto line : lines) failure.traceback.push_back(py::str(line));
  } catch (...) {
    failure.ename = failure.ename.empty() ? "Error" : failure.ename;
  }
  return failure;
}

// Opens an output window for one request: fds 1/2 point at the pipes again (user code
// may have closed them), output is published with this request's parent header, and
// everything written is published before the reply goes out.
class output_window {
 public:
  explicit output_window(fd_capture& output) : m_output(output) {
    m_output.restore_fds();
    m_output.begin_request();
  }
  ~output_window() {
    m_output.end_request();
    m_output.restore_fds();
  }

 private:
  fd_capture& m_output;
};

// A KeyboardInterrupt tripped after the previous cell ended (a late SIGINT) must not hit
// the next cell: run pending signal handlers now and drop what they raise.
void discard_stale_interrupt() {
  if (PyErr_CheckSignals() != 0) PyErr_Clear();
}

nl::json status_ok(nl::json reply) {
  if (!reply.contains("status")) reply["status"] = "ok";
  return reply;
}

}  // namespace

interpreter::interpreter(fd_capture& output) : m_output(output) {}

interpreter::~interpreter() {
  // Python is never finalised (the process exits first); keep the shell alive.
  m_shell.release();
}

interpreter& interpreter::instance() { return static_cast<interpreter&>(xeus::get_interpreter()); }

void interpreter::configure_impl() {
  if (m_shell) return;
  // Runs on the main thread while it still holds the GIL (xkernel's constructor).
  py::module_::import(native_module_name());
  m_shell = py::module_::import("terra.kernel.shell").attr("start_shell")();
}

nl::json interpreter::execute_request_impl(int execution_counter, const std::string& code,
                                           bool silent, bool store_history,
                                           nl::json user_expressions, bool allow_stdin) {
  output_window window(m_output);
  py::gil_scoped_acquire gil;
  discard_stale_interrupt();
  try {
    py::object result;
    {
      interrupt::executing_scope running;
      result = m_shell.attr("kernel_execute")(
          code, silent, store_history, from_json(user_expressions), allow_stdin, execution_counter);
    }
    return status_ok(to_json(result));
  } catch (py::error_already_set& error) {
    // Only reached when an exception escapes the shell itself, e.g. a KeyboardInterrupt
    // that lands between two of its statements.
    python_failure failure = describe(error);
    publish_execution_error(failure.ename, failure.evalue, failure.traceback);
    return xeus::create_error_reply(failure.ename, failure.evalue, failure.traceback);
  } catch (const std::exception& error) {
    publish_execution_error("KernelError", error.what(), {});
    return xeus::create_error_reply("KernelError", error.what());
  }
}

nl::json interpreter::call_shell(const std::function<py::object()>& call, nl::json fallback) {
  py::gil_scoped_acquire gil;
  discard_stale_interrupt();
  try {
    return status_ok(to_json(call()));
  } catch (py::error_already_set& error) {
    python_failure failure = describe(error);
    fallback["status"] = "error";
    fallback["ename"] = failure.ename;
    fallback["evalue"] = failure.evalue;
    fallback["traceback"] = failure.traceback;
    return fallback;
  } catch (const std::exception& error) {
    fallback["status"] = "error";
    fallback["ename"] = "KernelError";
    fallback["evalue"] = error.what();
    fallback["traceback"] = nl::json::array();
    return fallback;
  }
}

nl::json interpreter::complete_request_impl(const std::string& code, int cursor_pos) {
  output_window window(m_output);
  return call_shell([&] { return m_shell.attr("kernel_complete")(code, cursor_pos); },
                    xeus::create_complete_reply(nl::json::array(), cursor_pos, cursor_pos));
}

nl::json interpreter::inspect_request_impl(const std::string& code, int cursor_pos,
                                           int detail_level) {
  output_window window(m_output);
  return call_shell([&] { return m_shell.attr("kernel_inspect")(code, cursor_pos, detail_level); },
                    xeus::create_inspect_reply(false));
}

nl::json interpreter::is_complete_request_impl(const std::string& code) {
  return call_shell([&] { return m_shell.attr("kernel_is_complete")(code); },
                    xeus::create_is_complete_reply("unknown"));
}

nl::json interpreter::kernel_info_request_impl() {
  nl::json fallback = xeus::create_info_reply("", "terra", TERRA_KERNEL_VERSION, "python");
  return call_shell([&] { return m_shell.attr("kernel_info")(); }, fallback);
}

void interpreter::shutdown_request_impl() {
  // Control thread: stop a running cell so that the main thread can leave its loop;
  // the Python side is shut down on the main thread when the kernel exits.
  m_shutdown_requested.store(true);
  if (m_shutdown_callback) m_shutdown_callback();
  interrupt::interrupt_main_thread();
}

void interpreter::run_user_callback(const std::function<void()>& body) {
  output_window window(m_output);
  py::gil_scoped_acquire gil;
  discard_stale_interrupt();
  try {
    interrupt::executing_scope running;
    body();
  } catch (py::error_already_set& error) {
    try {
      py::module_::import("traceback")
          .attr("print_exception")(error.type(), error.value(), error.trace());
    } catch (...) {
    }
  } catch (const std::exception& error) {
    std::cerr << "terra-kernel: " << error.what() << std::endl;
  }
}

nl::json interpreter::history(const std::string& method, const nl::json& args) {
  nl::json fallback;
  fallback["history"] = nl::json::array();
  return call_shell([&] { return m_shell.attr("kernel_history")(method, from_json(args)); },
                    fallback);
}

void interpreter::shutdown_python() {
  if (m_python_shut_down || !m_shell) return;
  m_python_shut_down = true;
  output_window window(m_output);
  py::gil_scoped_acquire gil;
  try {
    m_shell.attr("kernel_shutdown")();
  } catch (py::error_already_set& error) {
    try {
      py::module_::import("traceback")
          .attr("print_exception")(error.type(), error.value(), error.trace());
    } catch (...) {
    }
  }
}

}  // namespace terra::kernel
