// Iterations of a region (DESIGN §3): begin, end (merge the trace; enter co-execution once an
// iteration repeated; leave it after repeated fallbacks), abort on an exception, and sync with
// the GraphRunner.
#include <ATen/Parallel.h>

#include <chrono>

#include "engine_impl.h"
#include "interceptor.h"
#include "openmp_threads.h"

namespace terra::coexec {
namespace {

using Clock = std::chrono::steady_clock;
// PendingAccesses entries of finished ops are dropped past this many (end of an iteration).
constexpr std::size_t kPendingAccessesKept = 4096;

graph::MergeOptions merge_options() {
  graph::MergeOptions options;
  options.generalise_doubles = true;
  // Ints too (slice bounds that move every iteration): an int can shape outputs, so a queued
  // node with an int ScalarFeed runs eagerly after a sync (has_int_feed) instead of trusting
  // its recorded metadata; views run for real anyway.
  options.generalise_ints = true;
  return options;
}

}  // namespace

Region* Engine::Impl::find_region(int id) const {
  auto found = regions.find(id);
  return found == regions.end() ? nullptr : found->second.get();
}

void Engine::Impl::begin_iteration(int region_id) {
  if (iteration) {
    ++nested;
    return;
  }
  Region* region = find_region(region_id);
  TORCH_CHECK(region != nullptr, "terra: unknown region id ", region_id);
  owner_thread.store(std::this_thread::get_id(), std::memory_order_relaxed);
  last_region = region_id;
  Iteration& it = start_iteration(region);
  if (!config.enabled || region->phase == Phase::kDisabled) {
    it.mode = IterationMode::kInactive;
    return;
  }
  if (region->phase == Phase::kCoexecuting) {
    it.mode = IterationMode::kCoexecuting;
    it.ops_coexecuted_before = region->counters.ops_coexecuted;
    region->cursor->reset();
    // From here the runner runs the kernels: Python's idle OpenMP team would slow its
    // parallel regions (openmp_threads.h). Every time: Python may have run parallel kernels
    // between iterations, and where it did not, there is no team and this costs nothing.
    release_openmp_threads();
  } else {
    it.mode = IterationMode::kTracing;
    region->cursor->reset();  // follows the graph while the trace repeats it (tracing.cpp)
  }
  if (region->runtime.empty()) compile_last_path(*region);
  runner.set_num_threads(at::get_num_threads());
  set_intercepting(true);
}

void Engine::Impl::compile_last_path(Region& region) {
  // Before the iteration's first op: built between its ops instead, these long-lived objects
  // landed among the buffers of its temporaries and pinned them (see Iteration::
  // note_recent_output), so that iteration took fresh memory for every temporary.
  const graph::Node* at = &region.graph.root();
  while (at->last_taken >= 0 && static_cast<std::size_t>(at->last_taken) < at->children.size()) {
    at = &region.graph.node(at->children[static_cast<std::size_t>(at->last_taken)]);
    node_runtime(region, *at);
  }
}

void Iteration::recycle() {
  region = nullptr;
  mode = IterationMode::kInactive;
  trace.clear();
  fallback_from = graph::kRootId;
  step = 0;
  values.clear();
  storages.clear();
  next_external = 0;
  ops_coexecuted_before = 0;
  recent_outputs.fill({});
  recent_next = 0;
  recording.reset();
  replay_unsafe = false;
}

void Iteration::note_recent_output(c10::TensorImpl* tensor, c10::StorageImpl* storage) {
  RecentOutput& slot = recent_outputs[recent_next++ % kRecentOutputs];
  if (slot.tensor != nullptr) {
    // Dead: nothing can refer to it any more, and a tensor born at its address later is new.
    const ValueEntry* value = values.find(slot.tensor);
    if (value != nullptr && value->keep.expired()) values.erase(slot.tensor);
    const StorageEntry* held = slot.storage ? storages.find(slot.storage) : nullptr;
    if (held != nullptr && held->keep.expired()) storages.erase(slot.storage);
  }
  slot = {tensor, storage};
}

Iteration& Engine::Impl::start_iteration(Region* region) {
  if (spare_iteration) {
    iteration = std::move(spare_iteration);
    iteration->recycle();
  } else {
    iteration = std::make_unique<Iteration>();
  }
  iteration->region = region;
  iteration->start = Clock::now();
  return *iteration;
}

std::unique_ptr<Iteration> Engine::Impl::take_iteration() {
  if (nested > 0) {
    --nested;
    return nullptr;
  }
  return std::move(iteration);
}

void Engine::Impl::end_iteration() {
  std::unique_ptr<Iteration> done = take_iteration();
  if (!done) return;
  Iteration& it = *done;
  Region& region = *it.region;
  collect_node_times();
  bool repeated = false;
  switch (it.mode) {
    case IterationMode::kInactive:
      break;
    case IterationMode::kTracing: {
      const graph::MergeResult result = region.graph.merge(it.trace, merge_options());
      // Identities may have been generalised, outputs found varying; a contained trace
      // changed none, and the compiled patterns that followed it stay valid.
      if (!result.contained) region.forget_compiled();
      repeated = result.contained;
      region.counters.iterations_traced++;
      region.traced_iterations++;
      if (repeated && region.traced_iterations >= config.warmup_iterations) {
        region.phase = Phase::kCoexecuting;
        // Backpressure needs an op time before the runner measured one (see
        // wait_for_runner_room): the eager time of this region's traced ops.
        runner.seed_mean_op_time(traced_op_seconds);
        debug(1, "region " + region.name + " co-executes");
      }
      break;
    }
    case IterationMode::kCoexecuting: {
      if (!region.cursor->finish()) {
        region.graph.merge_from(region.cursor->position().id, graph::Trace{}, merge_options());
        region.forget_compiled();
      }
      repeated = true;
      if (region.counters.ops_coexecuted > it.ops_coexecuted_before) {
        region.counters.iterations_coexecuted++;
      } else {
        region.counters.iterations_without_ops++;
      }
      region.fallbacks_in_row = 0;
      break;
    }
    case IterationMode::kFallenBack: {
      const graph::MergeResult result =
          region.graph.merge_from(it.fallback_from, it.trace, merge_options());
      region.forget_compiled();
      repeated = result.contained;
      region.counters.iterations_traced++;
      if (++region.fallbacks_in_row >= config.max_fallbacks_in_row) {
        region.phase = Phase::kTracing;
        region.traced_iterations = 0;
        region.fallbacks_in_row = 0;
        debug(1, "region " + region.name + " falls back to tracing");
      }
      break;
    }
  }
  region.last_repeated = repeated;
  if (region.graph.size() > config.max_graph_nodes && region.phase != Phase::kDisabled) {
    region.phase = Phase::kDisabled;
    debug(1, "region " + region.name + " disabled: graph too large");
  }
  region.counters.time_python_s += std::chrono::duration<double>(Clock::now() - it.start).count();
  if (!runner.pending()) set_intercepting(false);
  pending_accesses.forget_finished(runner.finished(), kPendingAccessesKept);
  it.recycle();  // drops this iteration's references now
  spare_iteration = std::move(done);
}

void Engine::Impl::abort_iteration() {
  std::unique_ptr<Iteration> done = take_iteration();
  if (!done) return;
  done->region->counters.iterations_aborted++;
  done->region->counters.time_python_s +=
      std::chrono::duration<double>(Clock::now() - done->start).count();
  // The partial trace is dropped; the graph keeps what earlier iterations merged.
  set_intercepting(false);
  sync();
}

void Engine::Impl::collect_node_times() {
  for (const NodeTime& time : runner.take_node_times()) {
    Region* region = find_region(time.region);
    if (region != nullptr && time.node < region->graph.size()) {
      region->graph.add_time(time.node, time.us);
    }
  }
}

void Engine::Impl::sync() {
  if (runner.pending()) {
    auto wait = [this] { runner.wait_idle(); };
    if (hooks.wait_without_gil) {
      hooks.wait_without_gil(wait);
    } else {
      wait();
    }
  }
  if (!runner.pending()) pending_accesses.clear();
  if (runner.warnings().any()) reissue_runner_warnings();
  if (std::exception_ptr error = runner.take_error()) std::rethrow_exception(error);
}

}  // namespace terra::coexec
