// Cursor: the co-execution walk through a TraceGraph, one op at a time.
//
// reset() at the start of an iteration, match() for every op the program issues, finish()
// when the iteration ends. match() compares against the children of the current node (the
// last-taken child first) and never allocates once the path buffer has grown to the
// iteration's length. Counts are committed by finish() only, so that an iteration that
// diverges and is then merged (TraceGraph::merge_from) is counted exactly once.
#pragma once

#include <cstdint>
#include <vector>

#include "terra/graph/node.h"
#include "terra/graph/op_identity.h"
#include "terra/graph/trace_graph.h"

namespace terra::graph {

class Cursor {
 public:
  // A cursor over `graph`, positioned at the root. The graph must outlive the cursor and stay
  // at its address (not be moved or reassigned); it may grow (merge) between iterations.
  explicit Cursor(TraceGraph& graph);

  // Starts a new iteration at the root.
  void reset();
  // Returns the child of the current node whose identity accepts `op`, and moves to it; at a
  // branch point this informs the graph (last_taken). nullptr on divergence: the position
  // stays, and further calls keep returning nullptr until reset().
  const Node* match(const OpIdentity& op);
  // match() with `accepts(const Node&)` in place of the identity test, for a caller that
  // judges a call without building its OpIdentity (the engine's compiled call patterns).
  // `accepts` may only say true where Node::identity.accepts would. When no child is
  // accepted the cursor stays as it was, without diverging: the caller then decides with
  // match(), which also records the divergence.
  template <class Accepts>
  const Node* match_if(Accepts&& accepts);
  // Ends the iteration at the current position: commits counts along the path and returns
  // true when some earlier iteration also ended here (false: the iteration is new here and
  // the engine should merge_from(position().id, rest) instead, which counts it). No effect
  // after a divergence or a previous finish() in the same iteration (returns false).
  bool finish();

  // The current node (the root before the first match).
  const Node& position() const;
  // Steps matched in this iteration (the next op's step).
  std::uint32_t steps() const { return static_cast<std::uint32_t>(path_.size()); }
  // True when the iteration may end here: some merged iteration ended at this position.
  bool at_end() const;
  // True after match() returned nullptr in this iteration.
  bool diverged() const { return diverged_; }
  // Index into the parent's children of the last matched node (informing the runner).
  std::int32_t last_choice() const { return last_choice_; }
  // The matched nodes of this iteration, by step.
  const std::vector<NodeId>& path() const { return path_; }

 private:
  // Moves to child `choice` of the current node (informing the graph); returns it.
  const Node* take(std::int32_t choice);

  TraceGraph* graph_;
  NodeId current_;
  std::vector<NodeId> path_;
  std::int32_t last_choice_ = -1;
  bool diverged_ = false;
  bool finished_ = false;
};

template <class Accepts>
const Node* Cursor::match_if(Accepts&& accepts) {
  if (diverged_ || finished_) return nullptr;
  const Node& at = graph_->node(current_);
  const auto count = static_cast<std::int32_t>(at.children.size());
  // Same order as match(): the last-taken child first.
  if (at.last_taken >= 0 && accepts(graph_->node(at.children[at.last_taken]))) {
    return take(at.last_taken);
  }
  for (std::int32_t i = 0; i < count; ++i) {
    if (i != at.last_taken && accepts(graph_->node(at.children[i]))) return take(i);
  }
  return nullptr;
}

}  // namespace terra::graph
