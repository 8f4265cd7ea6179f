#include "kernel/python_runtime.hpp"

#include <pybind11/embed.h>
#include <unistd.h>

#include <cstdlib>
#include <stdexcept>
#include <string>

namespace terra::kernel {
namespace {

std::string this_executable_dir() {
  char path[4096];
  ssize_t n = ::readlink("/proc/self/exe", path, sizeof(path) - 1);
  if (n <= 0) return {};
  std::string exe(path, static_cast<std::size_t>(n));
  return exe.substr(0, exe.rfind('/'));
}

bool is_executable(const std::string& path) { return ::access(path.c_str(), X_OK) == 0; }

void check(PyStatus status, const char* what) {
  if (PyStatus_Exception(status)) {
    std::string message = std::string("terra-kernel: ") + what;
    if (status.err_msg != nullptr) message += std::string(": ") + status.err_msg;
    throw std::runtime_error(message);
  }
}

}  // namespace

std::string find_python_executable() {
  const std::string dir = this_executable_dir();
  for (const char* name : {"/python", "/python3"}) {
    if (!dir.empty() && is_executable(dir + name)) return dir + name;
  }
  return TERRA_KERNEL_CONFIGURED_PYTHON;
}

void start_python(const std::string& python_executable) {
  // Figures are drawn inline unless the user chose a backend.
  ::setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline", /*overwrite=*/0);

  PyConfig config;
  PyConfig_InitPythonConfig(&config);
  config.install_signal_handlers = 1;
  config.parse_argv = 0;
  // program_name drives getpath: it finds <venv>/pyvenv.cfg next to this path.
  check(PyConfig_SetBytesString(&config, &config.program_name, python_executable.c_str()),
        "cannot set program name");
  const char* argv[] = {python_executable.c_str()};
  // initialize_interpreter clears `config` itself, on success and on failure.
  try {
    pybind11::initialize_interpreter(&config, 1, argv, /*add_program_dir_to_path=*/false);
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("terra-kernel: cannot start Python: ") + e.what());
  }
}

}  // namespace terra::kernel
