// Engine: the co-execution engine of one process (DESIGN §3–§5).
//
// Regions and iterations, interception of every ATen op issued on the thread that runs an
// iteration, tracing into a region's TraceGraph, co-execution with placeholders and the
// GraphRunner thread, fetches and fallback. This header includes no torch and no Python: the
// binding layer (terra/csrc) drives it through these calls and installs Hooks.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "terra/coexec/config.h"
#include "terra/coexec/hooks.h"
#include "terra/coexec/stats.h"

namespace terra::coexec {

enum class Phase { kTracing, kCoexecuting, kDisabled };

// "tracing", "coexecuting" or "disabled".
const char* phase_name(Phase phase);

class Engine {
 public:
  // The process-wide engine; the interceptor is registered with the dispatcher on first use.
  static Engine& instance();

  // Replaces the knobs (terra/config.py reads them from the environment).
  void configure(const EngineConfig& config);
  const EngineConfig& config() const;
  // Installs the binding layer's hooks (source location, waiting without the GIL).
  void set_hooks(Hooks hooks);

  // Finds the region with `key`, or creates it; returns its id (>= 0, stable until reset()).
  int region(const std::string& key, const std::string& name, const std::string& file, int line);
  // Starts an iteration of `region_id` on the calling thread. A nested begin (an iteration is
  // already active) is counted and ignored together with its matching end.
  void begin_iteration(int region_id);
  // Ends the current iteration: merges its trace; may switch the region into co-execution.
  // Work already confirmed keeps running on the GraphRunner after this returns.
  void end_iteration();
  // An exception left the iteration: waits until every op Python issued has run (as eager
  // would have), drops the co-execution cursor, keeps the graph. May rethrow a runner error.
  void abort_iteration();
  // Waits until the GraphRunner executed everything confirmed; rethrows a runner error.
  void sync();
  // A sync, after which the idle GraphRunner also gives its OpenMP team back at once (not
  // after its idle delay): eager code that follows runs as in a process without Terra (the
  // region policy times plain iterations after it).
  void quiesce();
  // True when the GraphRunner still has confirmed work (cheap; used by Python hooks).
  bool pending() const;
  // Confirmed ops queued on the GraphRunner and not yet finished; backpressure keeps it at
  // most EngineConfig::max_queued (cheap).
  std::int64_t queued() const;
  // A read that bypasses the dispatcher (numpy(), repr...) is about to happen: syncs when work
  // is pending and counts a fetch of the most recently active region. On a thread other than
  // the one running iterations, waits instead for the ops queued so far (nothing else of the
  // engine's is that thread's to touch).
  void fetch();
  // Intercepts the calling thread, one of the program's other threads (terra/hooks.py adopts
  // each threading.Thread as it starts): its ops first wait for the ops the iterations'
  // thread queued before them, then run eagerly (other_threads.cpp).
  void adopt_thread();
  // A numpy array now views the memory of the storage at `storage` (a StorageImpl address,
  // Python's UntypedStorage._cdata), so the program may write it without the dispatcher
  // until release_exposed(storage) says that array died. Counted per array; any thread.
  void expose(std::uintptr_t storage);
  void release_exposed(std::uintptr_t storage);
  // A setting that kernels read when they run changed on the program's thread, after a
  // sync (terra/hooks.py): the GraphRunner takes the program's intra-op thread count again,
  // and its denormal mode when `flush_denormal` is 0 or 1 (-1: unchanged).
  void settings_changed(int flush_denormal);
  // Suspends interception on the calling thread (the engine's own Python-side work, e.g.
  // formatting a tensor after a fetch); returns whether it was on, for resume_interception.
  bool pause_interception();
  void resume_interception(bool was_on);

  void set_enabled(bool enabled);
  bool is_enabled() const;
  // Forgets every region and graph (after a sync).
  void reset();
  // Human-readable reason of the last fallback (op, source line, expected vs got).
  std::string explain() const;
  // The nn.Module path of the code now running ("model/encoder/0"), kept by Python hooks.
  void set_module_path(const std::string& path);

  // Stats of every region and their sum.
  EngineStats stats() const;
  // Graph JSON (docs/architecture.md) of `region_id`, or of the most recently active region
  // when region_id < 0; "" when there is none.
  std::string graph_json(int region_id = -1) const;
  Phase phase(int region_id) const;
  // True when the last completed iteration of the region was fully contained in its graph.
  bool last_iteration_repeated(int region_id) const;
  // Id of the most recently active region, or -1.
  int current_region() const;

  // Test hooks: while held, the GraphRunner starts no new work (a sync releases the hold).
  void hold_runner(bool hold);

  struct Impl;
  // The implementation, for coexec's own translation units (the interceptor).
  Impl& impl() { return *impl_; }

 private:
  Engine();
  ~Engine();
  std::unique_ptr<Impl> impl_;
};

}  // namespace terra::coexec
