// `_terra_kernel`: the embedded Python module through which terra.kernel reaches the
// kernel's C++ facilities. One file per facility binds its functions into it.
#pragma once

#include <pybind11/pybind11.h>

namespace terra::kernel {

// Name of the embedded module (importable once CPython runs in this process).
const char* native_module_name();

void bind_stream(pybind11::module_& m);   // stream.cpp: output flushing, kernel log
void bind_display(pybind11::module_& m);  // display.cpp: display data, results, errors
void bind_comm(pybind11::module_& m);     // comm.cpp: comms over xeus' comm manager
void bind_input(pybind11::module_& m);    // input.cpp: input() over the stdin channel

}  // namespace terra::kernel
