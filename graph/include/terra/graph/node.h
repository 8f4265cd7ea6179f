// Node: one op of a TraceGraph, shared by every merged iteration whose prefix reaches it.
// Written only by TraceGraph (merge, mark_fetch, add_time) and Cursor (last_taken, counts at
// finish); a GraphRunner thread may read identity/outputs while a Cursor matches.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "terra/graph/op_identity.h"
#include "terra/graph/op_record.h"

namespace terra::graph {

using NodeId = std::uint32_t;
// The id of the graph's root: the virtual node before the first op of every iteration.
inline constexpr NodeId kRootId = std::numeric_limits<NodeId>::max();

struct Node {
  NodeId id = kRootId;
  NodeId parent = kRootId;  // kRootId for first ops (and for the root itself)
  std::uint32_t step = 0;   // position in the iteration (depth); meaningless for the root

  OpIdentity identity;
  std::vector<OutputInfo> outputs;
  SourceLocation source;
  std::string module_path;
  OpFlags flags;  // OR of the merged records' flags (is_fetch: fetched at least once)
  // Equal identities gave different output metadata (data-dependent shapes): `outputs` holds
  // the first seen, and co-execution must compute this node's real outputs before using them.
  bool outputs_vary = false;

  std::vector<NodeId> children;      // prefix-tree successors, in creation order
  std::vector<std::uint64_t> taken;  // taken[i]: iterations that went on to children[i]
  std::int32_t last_taken = -1;      // index into children of the most recent choice, -1: none
  std::uint64_t count = 0;           // iterations that reached this node (traced + co-executed)
  std::uint64_t ends = 0;            // iterations that ended right after this node

  double total_time_us = 0.0;  // accumulated execution time over `timed` executions
  std::uint64_t timed = 0;

  bool is_root() const { return id == kRootId; }
  bool is_branch() const { return children.size() > 1; }
  // Mean measured time per execution in µs, or a negative value when never timed.
  double mean_time_us() const { return timed == 0 ? -1.0 : total_time_us / timed; }
};

}  // namespace terra::graph
