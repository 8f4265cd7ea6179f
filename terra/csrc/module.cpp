// terra._C: one bind_<part>(m) per part of the engine, each defined in its own file.
#include <pybind11/pybind11.h>

#include "bindings.h"

PYBIND11_MODULE(_C, m) {
  m.doc() = "Terra's compiled half: the co-execution engine and its helpers.";
  terra::python::bind_engine(m);
  terra::python::bind_backward(m);
  terra::python::bind_visualizer(m);
}
