// EngineConfig: the engine's knobs. terra/config.py reads every TERRA_* variable and passes
// the values here; C++ users (tests) get the defaults.
#pragma once

#include <cstddef>

namespace terra::coexec {

struct EngineConfig {
  bool enabled = true;  // TERRA_DISABLE=1 turns this off
  // Iterations a region is traced at least before co-execution may start; it starts after an
  // iteration whose trace the graph already contained (TERRA_WARMUP).
  int warmup_iterations = 2;
  // Placeholders get memory filled with 0xFF bytes (NaN for floats) until the runner writes
  // them, so that a read that missed its fetch shows (TERRA_DEBUG_POISON).
  bool poison = false;
  // Diagnostics on stderr (TERRA_DEBUG): 0 none, 1 fallbacks and phases, 2 every op.
  int debug = 0;
  // A region whose graph grows beyond this many nodes is disabled (TERRA_MAX_GRAPH_NODES).
  std::size_t max_graph_nodes = 100000;
  // After this many iterations in a row that fell back, the region returns to tracing until
  // an iteration repeats again (TERRA_MAX_FALLBACKS_IN_ROW).
  int max_fallbacks_in_row = 3;
  // Backpressure: Python blocks when it is this many ops ahead of the GraphRunner
  // (TERRA_MAX_QUEUED), or when the queued ops would take the runner about this long
  // (TERRA_MAX_QUEUED_MS, estimated from the recent mean op time). Keeps memory bounded and
  // keeps a KeyboardInterrupt's drain short. 0 turns a bound off.
  int max_queued = 512;
  int max_queued_ms = 200;
  // A backward pass recorded once in co-execution is replayed from the recording when the
  // same autograd graph comes again (TERRA_REPLAY_BACKWARD; backward_replay.h).
  bool replay_backward = true;
};

}  // namespace terra::coexec
