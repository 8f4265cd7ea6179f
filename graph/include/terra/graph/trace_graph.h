// TraceGraph: the merge of a region's traces, a prefix tree of nodes.
//
// Each merged iteration is a path from the root. Two records are the same node when their
// identities are equal (DESIGN §3); the first disagreement opens a branch. At each step,
// merge follows the child whose identity accepts the record (exactly, or through its
// ScalarFeeds) -- the same child a Cursor matches; if there is none, a child that differs
// only in int/double scalar arguments, with equal output metadata, has those arguments
// turned into ScalarFeeds, unless that would let it accept what a sibling accepts; else a
// new child opens a branch. Invariant (checked by verify): no record is accepted by two
// siblings, so merge and Cursor always agree on the path. A followed node whose outputs
// differ from the record's is marked outputs_vary (data-dependent). A node added where a
// scalar already varied on another path (same op, source line and module) starts with that
// argument fed (varying_scalars.h), under the same sibling rule.
//
// Nodes live in stable storage: Node pointers and ids stay valid while the graph grows, so a
// Cursor (and a runner holding `const Node*`) may outlive merges. The graph is not
// synchronised: merge() must not run concurrently with a Cursor or a reader of the same graph.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <vector>

#include "terra/graph/node.h"
#include "terra/graph/trace.h"
#include "terra/graph/varying_scalars.h"

namespace terra::graph {

struct MergeOptions {
  bool generalise_doubles = true;  // double scalars that vary become ScalarFeeds
  // Int scalars too. An int can shape outputs for some values only (select(x, dim, 0) on a
  // [4, 4, 5] input: dims 0 and 1 give [4, 5], dim 2 gives [4, 4]), so an engine that feeds
  // int scalars in co-execution must check the outputs of such nodes (or turn this off).
  bool generalise_ints = true;
};

// An argument turned into a ScalarFeed by a merge.
struct Generalisation {
  NodeId node = kRootId;
  std::size_t arg = 0;
  friend bool operator==(const Generalisation& a, const Generalisation& b) {
    return a.node == b.node && a.arg == b.arg;
  }
};

struct MergeResult {
  // True when the graph already held this iteration: every record matched an existing node
  // (ScalarFeeds included), nothing was generalised and the trace ended where some earlier
  // iteration ended. The criterion for entering co-execution.
  bool contained = false;
  // Step of the first record that opened a new node; nullopt when no node was added.
  std::optional<std::size_t> divergence_step;
  // The node after which the new branch hangs (kRootId: at the start); valid with
  // divergence_step.
  NodeId divergence_parent = kRootId;
  std::size_t nodes_added = 0;
  std::vector<Generalisation> generalised;
  std::vector<NodeId> outputs_varied;  // nodes newly marked outputs_vary
  NodeId last = kRootId;               // node of the trace's last record (kRootId: empty trace)
  std::vector<NodeId> path;            // node of each record, by step
};

class TraceGraph {
 public:
  TraceGraph();
  TraceGraph(const TraceGraph&) = default;
  TraceGraph& operator=(const TraceGraph&) = default;
  TraceGraph(TraceGraph&&) noexcept = default;
  TraceGraph& operator=(TraceGraph&&) noexcept = default;

  // Walks `trace` from the root, following or opening nodes, and counts the iteration along
  // its path. Registers the trace's states/feeds/constants (and any referenced by inputs).
  // Throws VerifyError, leaving the graph unchanged, for a malformed trace (a NodeOutput
  // that is not an earlier step's output, tensor slots not naming each input once, followed
  // ops that are not a path from the root).
  MergeResult merge(const Trace& trace, const MergeOptions& options = {});
  // Same as merge() for an iteration whose records up to and including node `from` were
  // matched by a Cursor (co-execution) and whose records from step from.step+1 on are in
  // `rest` (a fallback's eager tail; its NodeOutput refs use absolute steps, like a Cursor's
  // identities). Counts the whole path once. `from` may be kRootId. `rest` has no followed
  // ops (VerifyError otherwise).
  MergeResult merge_from(NodeId from, const Trace& rest, const MergeOptions& options = {});

  // The virtual root (before the first op). Its count is the number of iterations counted.
  const Node& root() const { return root_; }
  // Node `id`; kRootId gives the root. Precondition: id < size() or id == kRootId.
  const Node& node(NodeId id) const { return id == kRootId ? root_ : nodes_[id]; }
  // Number of op nodes (the root excluded); ids are 0..size()-1, in creation order.
  std::size_t size() const { return nodes_.size(); }
  bool empty() const { return nodes_.empty(); }
  // Number of branch points (nodes, root included, with more than one child).
  std::size_t branch_count() const;
  // The nodes from the first op to `id`, in order (empty for kRootId).
  std::vector<NodeId> path_to(NodeId id) const;
  // The ancestor of `id` (or `id` itself) at `step`. Precondition: step <= node(id).step.
  NodeId ancestor_at(NodeId id, std::uint32_t step) const;

  // Calls `visit(node, path)` for every op node, depth-first with children in creation
  // order, where path[s] is the node's ancestor at step s (path.back() == node.id): resolving
  // NodeOutput refs this way costs O(1) each. Precondition: the structure verifies.
  void walk(const std::function<void(const Node&, const std::vector<NodeId>&)>& visit) const;

  // Tables of the iteration inputs seen so far, keyed by id (states, constants) or index (feeds).
  const std::map<std::int64_t, StateInfo>& states() const { return states_; }
  const std::map<std::int64_t, FeedInfo>& feeds() const { return feeds_; }
  const std::map<std::int64_t, ConstantInfo>& constants() const { return constants_; }

  // Marks node `id` as a fetch point (Python waited for its value during co-execution).
  void mark_fetch(NodeId id);
  // Marks node `id` as one whose kernel warned (OpFlags::warns) where it ran off the Python
  // thread.
  void mark_warns(NodeId id);
  // Adds one measured execution of node `id` taking `us` microseconds.
  void add_time(NodeId id, double us);
  // Throws VerifyError when the graph is malformed (see verify.h). Returns *this.
  const TraceGraph& verify() const;

  // Builds a graph from parts without any check (for deserialisation and tests of the
  // verifier): `nodes[i]` must have id i to be valid. Call verify() afterwards.
  static TraceGraph from_parts(Node root, std::vector<Node> nodes,
                               std::map<std::int64_t, StateInfo> states,
                               std::map<std::int64_t, FeedInfo> feeds,
                               std::map<std::int64_t, ConstantInfo> constants);

 private:
  friend class Cursor;

  Node& mutable_node(NodeId id) { return id == kRootId ? root_ : nodes_[id]; }
  NodeId follow_or_add(NodeId parent, const OpRecord& record, std::uint32_t step,
                       const MergeOptions& options, MergeResult& result);
  std::int32_t generalise_child(const Node& from, const OpRecord& record,
                                const MergeOptions& options, MergeResult& result);
  bool overlaps_a_sibling(const Node& from, NodeId self, const OpIdentity& identity) const;
  void follow(NodeId id, const OpRecord& record, MergeResult& result);
  NodeId add_child(NodeId parent, const OpRecord& record, std::uint32_t step,
                   const MergeOptions& options);
  void feed_known_varying_args(Node& added, const Node& from, const OpRecord& record,
                               const MergeOptions& options) const;
  void register_inputs(const Trace& trace);
  void count_path(const std::vector<NodeId>& path);
  // Updates the followed nodes' flags; returns those whose outputs now vary.
  std::vector<NodeId> follow_prefix(const std::vector<FollowedOp>& followed);
  MergeResult merge_records(NodeId start, std::size_t first_step, const Trace& trace,
                            const MergeOptions& options);

  Node root_;
  std::deque<Node> nodes_;  // deque: growth never moves existing nodes
  std::map<std::int64_t, StateInfo> states_;
  std::map<std::int64_t, FeedInfo> feeds_;
  std::map<std::int64_t, ConstantInfo> constants_;
  VaryingScalars varying_;  // where merges generalised a scalar, on any path
};

}  // namespace terra::graph
