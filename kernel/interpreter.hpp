// The xeus interpreter: a thin adapter from Jupyter requests to the Python shell
// (terra.kernel.shell.TerraShell), which does the work.
#pragma once

#include <pybind11/pybind11.h>

#include <atomic>
#include <functional>
#include <string>

#include "nlohmann/json.hpp"
#include "xeus/xinterpreter.hpp"

namespace terra::kernel {

namespace py = pybind11;
namespace nl = nlohmann;

class fd_capture;

// Each *_impl acquires the GIL, opens an output window, calls one method of the
// Python shell and turns its dict into the reply. No exception leaves an *_impl: a
// failure becomes an error reply (or an empty one where the protocol has no error).
class interpreter : public xeus::xinterpreter {
 public:
  explicit interpreter(fd_capture& output);
  ~interpreter() override;

  // The interpreter xeus runs (for the native module's functions).
  static interpreter& instance();

  // The fd capture that turns fds 1 and 2 into stream messages.
  fd_capture& output() noexcept { return m_output; }

  // Runs `body` as user code reacting to a message (comm handlers): output window,
  // interruptible, GIL held; a Python exception is printed as a traceback to stderr.
  void run_user_callback(const std::function<void()>& body);

  // Shell clean-up when the kernel exits: Python atexit functions, final flush.
  // Main thread; takes the GIL itself.
  void shutdown_python();

  // `callback` runs (on the control thread) when a shutdown_request arrives.
  void set_shutdown_callback(std::function<void()> callback) {
    m_shutdown_callback = std::move(callback);
  }

  // True once a shutdown_request arrived (the process is expected to end).
  bool shutdown_requested() const noexcept { return m_shutdown_requested.load(); }

  // History queries answered by IPython's history manager (see history.hpp).
  nl::json history(const std::string& method, const nl::json& args);

 private:
  void configure_impl() override;
  nl::json execute_request_impl(int execution_counter, const std::string& code, bool silent,
                                bool store_history, nl::json user_expressions,
                                bool allow_stdin) override;
  nl::json complete_request_impl(const std::string& code, int cursor_pos) override;
  nl::json inspect_request_impl(const std::string& code, int cursor_pos, int detail_level) override;
  nl::json is_complete_request_impl(const std::string& code) override;
  nl::json kernel_info_request_impl() override;
  void shutdown_request_impl() override;

  // Runs `call` (which calls the shell) under the GIL and converts the dict it returns;
  // a Python exception becomes `fallback` with status "error".
  nl::json call_shell(const std::function<py::object()>& call, nl::json fallback);

  fd_capture& m_output;
  py::object m_shell;
  bool m_python_shut_down = false;
  std::atomic<bool> m_shutdown_requested{false};
  std::function<void()> m_shutdown_callback;
};

}  // namespace terra::kernel
