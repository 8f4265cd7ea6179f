// The co-execution engine's public face (engine.h, DESIGN §3–§5): the process-wide instance,
// configuration, regions, stats and graph JSON. The work lives in Engine::Impl, one file per
// concept: op_handling.cpp (every intercepted op), call_identity.cpp, tracing.cpp,
// coexecution.cpp, fallback.cpp, iterations.cpp; the GraphRunner in graph_runner.cpp.
#include <ATen/Parallel.h>
#include <pthread.h>

#include <nlohmann/json.hpp>

#include "engine_impl.h"
#include "interceptor.h"
#include "terra/graph/json.h"

namespace terra::coexec {

const char* phase_name(Phase phase) {
  switch (phase) {
    case Phase::kTracing:
      return "tracing";
    case Phase::kCoexecuting:
      return "coexecuting";
    case Phase::kDisabled:
      return "disabled";
  }
  return "unknown";
}

Counters& Counters::operator+=(const Counters& other) {
  iterations_traced += other.iterations_traced;
  iterations_coexecuted += other.iterations_coexecuted;
  iterations_without_ops += other.iterations_without_ops;
  iterations_aborted += other.iterations_aborted;
  fallbacks += other.fallbacks;
  fetches += other.fetches;
  feeds += other.feeds;
  eager_ops += other.eager_ops;
  ops_coexecuted += other.ops_coexecuted;
  backwards_replayed += other.backwards_replayed;
  time_python_s += other.time_python_s;
  time_graph_s += other.time_graph_s;
  return *this;
}

namespace {

// A fork copies memory, not threads. The parent first waits until the GraphRunner ran every
// queued op, so that the child's copy holds the values eager would have (a fork reads all
// memory); the child, which has no runner, runs every op eagerly from then on (a DataLoader
// worker, a multiprocessing.Process started inside the loop).
// Any thread may fork: the parent uses only the runner's own thread-safe wait.
void before_fork() { Engine::instance().impl().runner.wait_idle(); }

void in_forked_child() { Engine::instance().impl().disable_after_fork(); }

}  // namespace

Engine& Engine::instance() {
  // Never destroyed: the runner thread must outlive every static that may still issue ops.
  static Engine* engine = [] {
    auto* created = new Engine();
    install_interceptor();
    pthread_atfork(before_fork, nullptr, in_forked_child);
    return created;
  }();
  return *engine;
}

Engine::Engine() : impl_(std::make_unique<Impl>()) {}
Engine::~Engine() = default;

void Engine::configure(const EngineConfig& config) {
  impl_->sync();
  impl_->config = config;
}

const EngineConfig& Engine::config() const { return impl_->config; }

void Engine::set_hooks(Hooks hooks) { impl_->hooks = std::move(hooks); }

int Engine::region(const std::string& key, const std::string& name, const std::string& file,
                   int line) {
  auto found = impl_->region_by_key.find(key);
  if (found != impl_->region_by_key.end()) return found->second;
  auto region = std::make_unique<Region>();
  region->id = impl_->next_region_id++;
  region->key = key;
  region->name = name;
  region->file = file;
  region->line = line;
  region->cursor = std::make_unique<graph::Cursor>(region->graph);
  const int id = region->id;
  impl_->region_by_key.emplace(key, id);
  impl_->regions.emplace(id, std::move(region));
  return id;
}

void Engine::begin_iteration(int region_id) { impl_->begin_iteration(region_id); }
void Engine::end_iteration() { impl_->end_iteration(); }
void Engine::abort_iteration() { impl_->abort_iteration(); }

void Engine::sync() {
  InterceptionOff off;
  impl_->sync();
  impl_->collect_node_times();
}

void Engine::quiesce() {
  sync();
  impl_->runner.release_openmp_team();
}

bool Engine::pending() const { return impl_->runner.pending(); }

std::int64_t Engine::queued() const { return impl_->runner.outstanding(); }

void Engine::fetch() {
  if (!impl_->runner.pending()) return;
  const std::thread::id owner = impl_->owner_thread.load(std::memory_order_relaxed);
  if (owner != std::thread::id() && owner != std::this_thread::get_id()) {
    impl_->wait_for_owner_ops();
    TORCH_CHECK(!impl_->runner.failed(),
                "terra: a co-executed op failed before this read on another thread; the error "
                "is raised on the thread that ran the loop");
    return;
  }
  if (Region* region = impl_->find_region(impl_->last_region)) region->counters.fetches++;
  sync();
}

void Engine::expose(std::uintptr_t storage) {
  impl_->exposed.expose(reinterpret_cast<c10::StorageImpl*>(storage));
}

void Engine::release_exposed(std::uintptr_t storage) {
  impl_->exposed.release(reinterpret_cast<c10::StorageImpl*>(storage));
}

void Engine::settings_changed(int flush_denormal) {
  impl_->runner.set_num_threads(at::get_num_threads());
  if (flush_denormal >= 0) impl_->runner.set_flush_denormal(flush_denormal == 1);
}

bool Engine::pause_interception() {
  const bool was_on = intercepting();
  if (was_on) set_intercepting(false);
  return was_on;
}

void Engine::resume_interception(bool was_on) {
  if (was_on) set_intercepting(true);
}

void Engine::set_enabled(bool enabled) {
  impl_->sync();
  impl_->config.enabled = enabled;
}

bool Engine::is_enabled() const { return impl_->config.enabled; }

void Engine::Impl::disable_after_fork() {
  config.enabled = false;  // iterations begin inactive: no interception, no runner
  set_intercepting(false);
}

void Engine::reset() {
  impl_->sync();
  impl_->collect_node_times();
  impl_->iteration.reset();
  impl_->nested = 0;
  impl_->regions.clear();
  impl_->region_by_key.clear();
  impl_->last_region = -1;
  impl_->last_fallback.clear();
  set_intercepting(false);
}

std::string Engine::explain() const {
  if (impl_->last_fallback.empty()) return "terra: no fallback so far";
  return impl_->last_fallback;
}

void Engine::set_module_path(const std::string& path) { impl_->module_path = path; }

EngineStats Engine::stats() const {
  EngineStats stats;
  for (const auto& [id, region] : impl_->regions) {
    RegionStats entry;
    entry.id = id;
    entry.key = region->key;
    entry.name = region->name;
    entry.file = region->file;
    entry.line = region->line;
    entry.phase = phase_name(region->phase);
    entry.graph_nodes = region->graph.size();
    entry.graph_branches = region->graph.branch_count();
    entry.counters = region->counters;
    entry.counters.time_graph_s = impl_->runner.busy_seconds(id);
    stats.total += entry.counters;
    stats.graph_nodes += entry.graph_nodes;
    stats.graph_branches += entry.graph_branches;
    stats.regions.push_back(std::move(entry));
  }
  return stats;
}

std::string Engine::graph_json(int region_id) const {
  if (region_id < 0) region_id = impl_->last_region;
  const Region* region = impl_->find_region(region_id);
  if (region == nullptr) return "";
  impl_->collect_node_times();
  graph::RegionInfo info{"r" + std::to_string(region->id), region->name, region->file,
                         region->line};
  nlohmann::json stats = {
      {"iterations_traced", region->counters.iterations_traced},
      {"iterations_coexecuted", region->counters.iterations_coexecuted},
      {"fallbacks", region->counters.fallbacks},
      {"fetches", region->counters.fetches},
      {"feeds", region->counters.feeds},
      {"phase", phase_name(region->phase)},
  };
  return graph::to_json_string(region->graph, info, stats);
}

Phase Engine::phase(int region_id) const {
  const Region* region = impl_->find_region(region_id);
  TORCH_CHECK(region != nullptr, "terra: unknown region id ", region_id);
  return region->phase;
}

bool Engine::last_iteration_repeated(int region_id) const {
  const Region* region = impl_->find_region(region_id);
  return region != nullptr && region->last_repeated;
}

int Engine::current_region() const { return impl_->last_region; }

void Engine::hold_runner(bool hold) { impl_->runner.set_hold(hold); }

}  // namespace terra::coexec
