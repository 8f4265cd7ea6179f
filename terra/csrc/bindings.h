// The bind_<part> functions that module.cpp calls, one per part of terra._C.
#pragma once

#include <pybind11/pybind11.h>

namespace terra::python {

// The co-execution engine (engine_bindings.cpp): the low-level API used by terra/engine.py.
void bind_engine(pybind11::module_& m);

// The hook around the autograd engine (backward_bindings.cpp): terra._C.begin_backward.
void bind_backward(pybind11::module_& m);

// Graphviz layout and static SVG of graph views (visualizer_bindings.cpp): terra._C.visualizer.
void bind_visualizer(pybind11::module_& m);

}  // namespace terra::python
