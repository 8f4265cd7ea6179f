// The engine with a fresh state, for the GoogleTests of terra::coexec (TERRA_DEBUG=n prints
// its diagnostics while debugging a test).
#pragma once

#include <cstdlib>

#include "terra/coexec/engine.h"

namespace terra::coexec::testing {

inline Engine& fresh_engine() {
  Engine& engine = Engine::instance();
  engine.reset();
  auto config = engine.config();
  config.debug = std::getenv("TERRA_DEBUG") ? std::atoi(std::getenv("TERRA_DEBUG")) : 0;
  engine.configure(config);
  return engine;
}

}  // namespace terra::coexec::testing
