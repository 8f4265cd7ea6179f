#include "kernel/native_module.hpp"

#include <pybind11/embed.h>

namespace terra::kernel {

const char* native_module_name() { return "_terra_kernel"; }

}  // namespace terra::kernel

PYBIND11_EMBEDDED_MODULE(_terra_kernel, m) {
  m.doc() = "The Terra kernel's C++ facilities (stream, display, comm, input).";
  terra::kernel::bind_stream(m);
  terra::kernel::bind_display(m);
  terra::kernel::bind_comm(m);
  terra::kernel::bind_input(m);
}
