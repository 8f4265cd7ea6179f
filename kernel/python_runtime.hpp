// The embedded CPython: started so that it runs inside the project's virtual
// environment, exactly like that environment's `python` would.
#pragma once

#include <string>

namespace terra::kernel {

// The interpreter to impersonate: `python` next to this executable when there is one
// (the installed kernel lives in .venv/bin), else the Python the build was configured
// with.
std::string find_python_executable();

// Initialises CPython with `python_executable` as sys.executable, so that its
// pyvenv.cfg is honoured (sys.prefix = the venv, its site-packages on sys.path).
// The calling thread holds the GIL afterwards. Throws std::runtime_error on failure.
void start_python(const std::string& python_executable);

}  // namespace terra::kernel
