#include "terra/graph/trace_graph.h"

#include <algorithm>
#include <utility>

#include "terra/graph/verify.h"

namespace terra::graph {
namespace {

// Indices of the arguments where `record` differs from `node`'s identity; empty unless they
// differ only in int/double scalars allowed by `options` (the generalisation candidates).
std::vector<std::size_t> generalisable_args(const OpIdentity& node, const OpIdentity& record,
                                            const MergeOptions& options) {
  std::vector<std::size_t> differing;
  for (std::size_t i = 0; i < node.args().size(); ++i) {
    const Arg& pattern = node.args()[i];
    const Arg& value = record.args()[i];
    if (pattern == value || pattern.is<ScalarFeed>()) continue;
    bool allowed = pattern.scalar_kind() == ScalarKind::kInt ? options.generalise_ints
                                                             : options.generalise_doubles;
    if (!allowed) return {};
    differing.push_back(i);
  }
  return differing;
}

// The candidates a record can follow, from most to least preferred.
struct ChildChoice {
  std::int32_t exact = -1;        // equal identity and outputs
  std::int32_t accepted = -1;     // accepted through ScalarFeeds, equal outputs
  std::int32_t generalise = -1;   // differs only in allowed scalars, equal outputs
  std::int32_t varied = -1;       // equal/accepted identity, different outputs
  std::vector<std::size_t> generalise_args;
};

}  // namespace

TraceGraph::TraceGraph() = default;

MergeResult TraceGraph::merge(const Trace& trace, const MergeOptions& options) {
  return merge_records(kRootId, 0, trace, options);
}

MergeResult TraceGraph::merge_from(NodeId from, const Trace& rest, const MergeOptions& options) {
  std::size_t first_step = from == kRootId ? 0 : node(from).step + 1;
  return merge_records(from, first_step, rest, options);
}

MergeResult TraceGraph::merge_records(NodeId start, std::size_t first_step, const Trace& trace,
                                      const MergeOptions& options) {
  MergeResult result;
  register_inputs(trace);
  result.path = path_to(start);
  result.path.reserve(result.path.size() + trace.records.size());
  NodeId current = start;
  for (std::size_t i = 0; i < trace.records.size(); ++i) {
    auto step = static_cast<std::uint32_t>(first_step + i);
    current = follow_or_add(current, trace.records[i], step, options, result);
    result.path.push_back(current);
  }
  bool ended_here_before = node(current).ends > 0;
  count_path(result.path);
  result.last = current;
  result.contained = result.nodes_added == 0 && result.generalised.empty() &&
                     result.outputs_varied.empty() && ended_here_before;
  return result;
}

NodeId TraceGraph::follow_or_add(NodeId parent, const OpRecord& record, std::uint32_t step,
                                 const MergeOptions& options, MergeResult& result) {
  ChildChoice choice;
  const Node& from = node(parent);
  for (std::size_t i = 0; i < from.children.size() && choice.exact < 0; ++i) {
    const Node& child = nodes_[from.children[i]];
    IdentityMatch match = child.identity.compare(record.identity);
    if (match == IdentityMatch::kDifferent) continue;
    bool same_outputs = child.outputs == record.outputs;
    auto index = static_cast<std::int32_t>(i);
    if (match == IdentityMatch::kScalarsDiffer) {
      if (!same_outputs || choice.generalise >= 0) continue;
      choice.generalise_args = generalisable_args(child.identity, record.identity, options);
      if (!choice.generalise_args.empty()) choice.generalise = index;
    } else if (!same_outputs) {
      if (choice.varied < 0) choice.varied = index;
    } else if (match == IdentityMatch::kEqual) {
      choice.exact = index;
    } else if (choice.accepted < 0) {
      choice.accepted = index;
    }
  }

  std::int32_t taken = choice.exact >= 0      ? choice.exact
                       : choice.accepted >= 0 ? choice.accepted
                       : choice.generalise >= 0 ? choice.generalise
                                                : choice.varied;
  if (taken < 0) {
    if (!result.divergence_step) {
      result.divergence_step = step;
      result.divergence_parent = parent;
    }
    ++result.nodes_added;
    return add_child(parent, record, step);
  }

  NodeId id = from.children[static_cast<std::size_t>(taken)];
  Node& child = nodes_[id];
  if (taken == choice.generalise) {
    for (std::size_t arg : choice.generalise_args) {
      child.identity.generalise_arg(arg);
      result.generalised.push_back({id, arg});
    }
  } else if (taken == choice.varied && !child.outputs_vary) {
    child.outputs_vary = true;
    child.flags.data_dependent_shape = true;
    result.outputs_varied.push_back(id);
  }
  child.flags.is_view_op |= record.flags.is_view_op;
  child.flags.is_inplace |= record.flags.is_inplace;
  child.flags.is_fetch |= record.flags.is_fetch;
  child.flags.is_random |= record.flags.is_random;
  child.flags.data_dependent_shape |= record.flags.data_dependent_shape;
  return id;
}

NodeId TraceGraph::add_child(NodeId parent, const OpRecord& record, std::uint32_t step) {
  auto id = static_cast<NodeId>(nodes_.size());
  Node& added = nodes_.emplace_back();
  added.id = id;
  added.parent = parent;
  added.step = step;
  added.identity = record.identity;
  added.outputs = record.outputs;
  added.source = record.source;
  added.module_path = record.module_path;
  added.flags = record.flags;
  Node& from = mutable_node(parent);  // deque growth keeps references valid
  from.children.push_back(id);
  from.taken.push_back(0);
  return id;
}

void TraceGraph::register_inputs(const Trace& trace) {
  for (const StateInfo& state : trace.states) {
    StateInfo& entry = states_[state.id];
    std::string name = state.name.empty() ? entry.name : state.name;
    entry = state;
    entry.name = std::move(name);
  }
  for (const FeedInfo& feed : trace.feeds) feeds_[feed.index] = feed;
  for (const ConstantInfo& constant : trace.constants) constants_[constant.id] = constant;
  for (const OpRecord& record : trace.records) {
    for (const TensorInput& input : record.identity.inputs()) {
      if (const auto* state = std::get_if<State>(&input.ref)) {
        states_.try_emplace(state->id, StateInfo{state->id, input.meta, ""});
      } else if (const auto* feed = std::get_if<Feed>(&input.ref)) {
        feeds_.try_emplace(feed->index, FeedInfo{feed->index, input.meta});
      } else if (const auto* constant = std::get_if<Constant>(&input.ref)) {
        constants_.try_emplace(constant->id, ConstantInfo{constant->id, input.meta});
      }
    }
  }
}

void TraceGraph::count_path(const std::vector<NodeId>& path) {
  ++root_.count;
  NodeId parent = kRootId;
  for (NodeId id : path) {
    Node& from = mutable_node(parent);
    auto it = std::find(from.children.begin(), from.children.end(), id);
    auto index = static_cast<std::size_t>(it - from.children.begin());
    ++from.taken[index];
    from.last_taken = static_cast<std::int32_t>(index);
    ++nodes_[id].count;
    parent = id;
  }
  ++mutable_node(parent).ends;
}

std::size_t TraceGraph::branch_count() const {
  std::size_t branches = root_.is_branch() ? 1 : 0;
  for (const Node& n : nodes_) branches += n.is_branch() ? 1 : 0;
  return branches;
}

std::vector<NodeId> TraceGraph::path_to(NodeId id) const {
  std::vector<NodeId> path;
  for (NodeId at = id; at != kRootId; at = nodes_[at].parent) path.push_back(at);
  std::reverse(path.begin(), path.end());
  return path;
}

NodeId TraceGraph::ancestor_at(NodeId id, std::uint32_t step) const {
  while (id != kRootId && nodes_[id].step > step) id = nodes_[id].parent;
  return id;
}

void TraceGraph::mark_fetch(NodeId id) { mutable_node(id).flags.is_fetch = true; }

void TraceGraph::add_time(NodeId id, double us) {
  Node& timed = mutable_node(id);
  timed.total_time_us += us;
  ++timed.timed;
}

const TraceGraph& TraceGraph::verify() const {
  terra::graph::verify(*this);
  return *this;
}

TraceGraph TraceGraph::from_parts(Node root, std::vector<Node> nodes,
                                  std::map<std::int64_t, StateInfo> states,
                                  std::map<std::int64_t, FeedInfo> feeds,
                                  std::map<std::int64_t, ConstantInfo> constants) {
  TraceGraph graph;
  graph.root_ = std::move(root);
  graph.nodes_.assign(std::make_move_iterator(nodes.begin()), std::make_move_iterator(nodes.end()));
  graph.states_ = std::move(states);
  graph.feeds_ = std::move(feeds);
  graph.constants_ = std::move(constants);
  return graph;
}

}  // namespace terra::graph
