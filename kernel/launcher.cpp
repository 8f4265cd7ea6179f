#include "kernel/launcher.hpp"

#include <pybind11/embed.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <thread>

#include "kernel/fd_capture.hpp"
#include "kernel/history.hpp"
#include "kernel/interpreter.hpp"
#include "kernel/interrupt.hpp"
#include "kernel/python_runtime.hpp"
#include "kernel/server.hpp"
#include "xeus/xhelper.hpp"
#include "xeus/xkernel.hpp"
#include "xeus/xkernel_configuration.hpp"
#include "zmq.hpp"

namespace terra::kernel {
namespace {

// The objects the exit handler must reach. xeus ends the process with std::exit() from
// inside its message loop, so clean-up runs as an atexit handler, on the main thread.
struct running_kernel {
  fd_capture* output = nullptr;
  interpreter* interp = nullptr;
};
running_kernel g_running;

// Runs the Python side's exit work and stops the capture, then ends the process
// without running static destructors: CPython is never finalised (user threads may
// still run), and tearing down LibTorch's statics under it crashes. It is registered
// with atexit again when shutdown_request arrives, so that it runs before the exit
// handlers of every library loaded since start (atexit runs handlers in reverse).
void on_exit() {
  static std::atomic<bool> once{false};
  if (once.exchange(true)) return;
  if (g_running.interp != nullptr) g_running.interp->shutdown_python();
  if (g_running.output != nullptr) g_running.output->stop();
  // Give ZMQ's I/O thread a moment to deliver the shutdown_reply already queued.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::fflush(nullptr);
  ::_exit(g_running.interp != nullptr && g_running.interp->shutdown_requested() ? 0 : 1);
}

void publish_stream(const std::string& name, const std::string& text) {
  interpreter::instance().publish_stream(name, text);
}

void print_usage() { std::cerr << "usage: terra-kernel -f CONNECTION_FILE" << std::endl; }

}  // namespace

int launch(int argc, char* argv[]) {
  if (xeus::should_print_version(argc, argv)) {
    std::cout << "terra-kernel " << TERRA_KERNEL_VERSION << std::endl;
    return 0;
  }
  const std::string connection_file = xeus::extract_filename(argc, argv);
  if (connection_file.empty()) {
    print_usage();
    return 2;
  }
  try {
    xeus::xconfiguration config = xeus::load_configuration(connection_file);

    start_python(find_python_executable());
    // Before any other thread exists: every thread started from now on (ZMQ, xeus,
    // the output reader) inherits a blocked SIGINT; only running cells unblock it.
    interrupt::install();

    // Leaked on purpose: the process ends with std::exit() while they are in use.
    auto* output = new fd_capture(publish_stream);
    output->start();
    g_running.output = output;

    auto interp = std::make_unique<interpreter>(*output);
    g_running.interp = interp.get();
    interp->set_shutdown_callback([] { std::atexit(on_exit); });
    xeus::register_interpreter(interp.get());

    auto* kernel =
        new xeus::xkernel(config, xeus::get_user_name(), xeus::make_context<zmq::context_t>(),
                          std::move(interp), make_kernel_server, make_shell_history_manager(),
                          /*logger=*/nullptr, xeus::make_null_debugger, nl::json::object(),
                          nl::json::error_handler_t::replace);
    static_cast<kernel_server&>(kernel->get_server())
        .set_interrupt_callback(interrupt::interrupt_main_thread);

    std::atexit(on_exit);
    pybind11::gil_scoped_release release;  // cells take the GIL; other threads run meanwhile
    kernel->start();
    return 0;
  } catch (const pybind11::error_already_set& e) {
    std::cerr << "terra-kernel: cannot start: " << e.what() << std::endl;
  } catch (const std::exception& e) {
    std::cerr << "terra-kernel: cannot start: " << e.what() << std::endl;
  }
  if (g_running.output != nullptr) g_running.output->stop();
  return 1;
}

}  // namespace terra::kernel
