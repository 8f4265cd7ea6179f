#include "terra/graph/cursor.h"

#include "terra/graph/trace_graph.h"

namespace terra::graph {

Cursor::Cursor(TraceGraph& graph) : graph_(&graph), current_(kRootId) {}

void Cursor::reset() {
  current_ = kRootId;
  path_.clear();  // keeps capacity: no allocation in steady state
  last_choice_ = -1;
  diverged_ = false;
  finished_ = false;
}

const Node* Cursor::match(const OpIdentity& op) {
  if (diverged_ || finished_) return nullptr;
  Node& at = graph_->mutable_node(current_);
  const auto count = static_cast<std::int32_t>(at.children.size());
  std::int32_t found = -1;
  // The last-taken child first: loops usually take the same path as last time. At most one
  // child accepts `op` (TraceGraph's sibling invariant), so the first found is the one.
  if (at.last_taken >= 0 && graph_->nodes_[at.children[at.last_taken]].identity.accepts(op)) {
    found = at.last_taken;
  }
  for (std::int32_t i = 0; i < count && found < 0; ++i) {
    if (i != at.last_taken && graph_->nodes_[at.children[i]].identity.accepts(op)) found = i;
  }
  if (found < 0) {
    diverged_ = true;
    return nullptr;
  }
  return take(found);
}

const Node* Cursor::take(std::int32_t choice) {
  Node& at = graph_->mutable_node(current_);
  at.last_taken = choice;
  last_choice_ = choice;
  current_ = at.children[choice];
  path_.push_back(current_);
  return &graph_->nodes_[current_];
}

bool Cursor::finish() {
  if (diverged_ || finished_ || !at_end()) return false;
  finished_ = true;
  graph_->count_path(path_);
  return true;
}

const Node& Cursor::position() const { return graph_->node(current_); }

bool Cursor::at_end() const { return graph_->node(current_).ends > 0; }

}  // namespace terra::graph
