// Hooks: what the binding layer (which knows Python) lends the engine (which does not).
#pragma once

#include <functional>
#include <string>

#include "terra/graph/shared_string.h"

namespace terra::coexec {

struct Hooks {
  // Fills the innermost source location in user code of the running Python program; false
  // when there is none. Called only while tracing, on the thread that issued the op.
  std::function<bool(graph::SharedString* file, int* line)> source_location;
  // Runs `wait` with the GIL released when the calling thread holds it.
  std::function<void(const std::function<void()>& wait)> wait_without_gil;
};

}  // namespace terra::coexec
