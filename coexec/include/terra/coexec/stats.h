// Stats of the engine (DESIGN §1 keys), per region and summed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace terra::coexec {

struct Counters {
  std::uint64_t iterations_traced = 0;      // iterations that ran (at least partly) eagerly
  std::uint64_t iterations_coexecuted = 0;  // iterations co-executed from start to end
  // Iterations that followed the graph without a single op (a loop without tensor ops): not
  // co-execution, so not counted in iterations_coexecuted.
  std::uint64_t iterations_without_ops = 0;
  std::uint64_t iterations_aborted = 0;  // left by an exception
  std::uint64_t fallbacks = 0;           // divergences from the graph in co-execution
  std::uint64_t fetches = 0;             // times Python waited for a value
  std::uint64_t feeds = 0;               // tensors Python made, fed in co-execution
  std::uint64_t eager_ops = 0;       // ops co-execution could not handle, run eagerly after a sync
  std::uint64_t ops_coexecuted = 0;  // ops answered by the graph (placeholder or Python-side)
  // backward() calls whose ops the engine issued from a recording, without autograd's engine
  std::uint64_t backwards_replayed = 0;
  double time_python_s = 0;  // wall time of the iterations on the Python thread
  double time_graph_s = 0;   // GraphRunner time executing the region's nodes

  Counters& operator+=(const Counters& other);
};

struct RegionStats {
  int id = 0;
  std::string key, name, file;
  int line = 0;
  std::string phase;
  std::uint64_t graph_nodes = 0;
  std::uint64_t graph_branches = 0;
  Counters counters;
};

struct EngineStats {
  Counters total;
  std::uint64_t graph_nodes = 0;
  std::uint64_t graph_branches = 0;
  std::vector<RegionStats> regions;
};

}  // namespace terra::coexec
