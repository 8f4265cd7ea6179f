#include "terra/graph/trace_graph.h"

#include <algorithm>
#include <string>
#include <utility>
#include <variant>

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

// The child of `from` whose identity accepts `record`, or -1. At most one child accepts any
// record (siblings never overlap, see generalise_child), so this is also the Cursor's choice.
std::int32_t accepting_child(const std::deque<Node>& nodes, const Node& from,
                             const OpIdentity& record) {
  for (std::size_t i = 0; i < from.children.size(); ++i) {
    if (nodes[from.children[i]].identity.accepts(record)) return static_cast<std::int32_t>(i);
  }
  return -1;
}

// Throws VerifyError, before the graph changes, when a record of `trace` (whose first record
// sits at `first_step`, after the nodes `prefix`) refers to a step that is not before it, to
// an output its producer does not have, or does not name each input by one tensor slot.
void check_trace(const TraceGraph& graph, const std::vector<NodeId>& prefix, std::size_t first_step,
                 const Trace& trace) {
  auto outputs_at = [&](std::uint32_t step) -> std::size_t {
    if (step < first_step) return graph.node(prefix[step]).outputs.size();
    return trace.records[step - first_step].outputs.size();
  };
  for (std::size_t i = 0; i < trace.records.size(); ++i) {
    const OpIdentity& identity = trace.records[i].identity;
    const std::size_t step = first_step + i;
    auto bad = [&](const std::string& what) {
      throw VerifyError("malformed trace: record at step " + std::to_string(step) + " (" +
                        identity.op().qualified() + "): " + what);
    };
    for (const TensorInput& input : identity.inputs()) {
      const auto* output = std::get_if<NodeOutput>(&input.ref);
      if (output == nullptr) continue;
      if (output->step >= step) bad("input refers to step " + std::to_string(output->step));
      if (output->output >= outputs_at(output->step)) {
        bad("input refers to missing output " + std::to_string(output->output) + " of step " +
            std::to_string(output->step));
      }
    }
    for (const Arg& arg : identity.args()) {
      if (arg.is<ScalarFeed>()) bad("a record holds a ScalarFeed (only nodes do)");
    }
    std::string problem = identity.tensor_slot_problem();
    if (!problem.empty()) bad(problem);
  }
}

// Throws VerifyError unless `followed` is a path of `graph` from the root.
void check_followed(const TraceGraph& graph, const std::vector<FollowedOp>& followed) {
  NodeId parent = kRootId;
  for (std::size_t step = 0; step < followed.size(); ++step) {
    const NodeId id = followed[step].node;
    const std::vector<NodeId>& children = graph.node(parent).children;
    if (id == kRootId || id >= graph.size() ||
        std::find(children.begin(), children.end(), id) == children.end()) {
      throw VerifyError("malformed trace: followed op at step " + std::to_string(step) +
                        " is not a child of the op before");
    }
    parent = id;
  }
}

}  // namespace

TraceGraph::TraceGraph() = default;

MergeResult TraceGraph::merge(const Trace& trace, const MergeOptions& options) {
  if (trace.followed.empty()) return merge_records(kRootId, 0, trace, options);
  check_followed(*this, trace.followed);
  // merge_records checks the records (against the followed path) before it changes anything,
  // so the followed nodes are updated only once it returned.
  MergeResult result =
      merge_records(trace.followed.back().node, trace.followed.size(), trace, options);
  const std::vector<NodeId> varied = follow_prefix(trace.followed);
  result.outputs_varied.insert(result.outputs_varied.begin(), varied.begin(), varied.end());
  result.contained = result.contained && varied.empty();
  return result;
}

std::vector<NodeId> TraceGraph::follow_prefix(const std::vector<FollowedOp>& followed) {
  // Equal identity (the engine's pattern accepted the call): what the iteration observed
  // beyond it is a fetch, and outputs that differ, as follow() treats them.
  std::vector<NodeId> varied;
  for (const FollowedOp& op : followed) {
    Node& node = nodes_[op.node];
    node.flags.is_fetch |= op.is_fetch;
    node.flags.warns |= op.warns;
    if (op.outputs_differ && !node.outputs_vary) {
      node.outputs_vary = true;
      node.flags.data_dependent_shape = true;
      varied.push_back(op.node);
    }
  }
  return varied;
}

MergeResult TraceGraph::merge_from(NodeId from, const Trace& rest, const MergeOptions& options) {
  if (!rest.followed.empty()) {
    throw VerifyError("malformed trace: merge_from with followed ops (only merge takes them)");
  }
  std::size_t first_step = from == kRootId ? 0 : node(from).step + 1;
  return merge_records(from, first_step, rest, options);
}

MergeResult TraceGraph::merge_records(NodeId start, std::size_t first_step, const Trace& trace,
                                      const MergeOptions& options) {
  MergeResult result;
  result.path = path_to(start);
  check_trace(*this, result.path, first_step, trace);
  register_inputs(trace);
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
  const Node& from = node(parent);
  std::int32_t taken = accepting_child(nodes_, from, record.identity);
  if (taken < 0) taken = generalise_child(from, record, options, result);
  if (taken < 0) {
    if (!result.divergence_step) {
      result.divergence_step = step;
      result.divergence_parent = parent;
    }
    ++result.nodes_added;
    return add_child(parent, record, step, options);
  }
  NodeId id = from.children[static_cast<std::size_t>(taken)];
  follow(id, record, result);
  return id;
}

std::int32_t TraceGraph::generalise_child(const Node& from, const OpRecord& record,
                                          const MergeOptions& options, MergeResult& result) {
  for (std::size_t i = 0; i < from.children.size(); ++i) {
    Node& child = nodes_[from.children[i]];
    if (child.identity.compare(record.identity) != IdentityMatch::kScalarsDiffer) continue;
    if (child.outputs != record.outputs) continue;  // the scalar shapes an output: identity
    std::vector<std::size_t> args = generalisable_args(child.identity, record.identity, options);
    if (args.empty()) continue;
    OpIdentity generalised = child.identity;
    for (std::size_t arg : args) generalised.generalise_arg(arg);
    if (overlaps_a_sibling(from, child.id, generalised)) continue;
    child.identity = std::move(generalised);
    for (std::size_t arg : args) {
      result.generalised.push_back({child.id, arg});
      varying_.note(child, arg);
    }
    return static_cast<std::int32_t>(i);
  }
  return -1;
}

bool TraceGraph::overlaps_a_sibling(const Node& from, NodeId self,
                                    const OpIdentity& identity) const {
  for (NodeId sibling : from.children) {
    if (sibling != self && nodes_[sibling].identity.overlaps(identity)) return true;
  }
  return false;
}

void TraceGraph::follow(NodeId id, const OpRecord& record, MergeResult& result) {
  Node& child = nodes_[id];
  if (child.outputs != record.outputs && !child.outputs_vary) {
    // Equal identity, other output metadata: a data-dependent shape (or a fed scalar that
    // does shape the output after all). The engine must compute such outputs at run time.
    child.outputs_vary = true;
    child.flags.data_dependent_shape = true;
    result.outputs_varied.push_back(id);
  }
  child.flags.is_view_op |= record.flags.is_view_op;
  child.flags.is_inplace |= record.flags.is_inplace;
  child.flags.is_fetch |= record.flags.is_fetch;
  child.flags.is_random |= record.flags.is_random;
  child.flags.data_dependent_shape |= record.flags.data_dependent_shape;
  child.flags.warns |= record.flags.warns;
}

NodeId TraceGraph::add_child(NodeId parent, const OpRecord& record, std::uint32_t step,
                             const MergeOptions& options) {
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
  feed_known_varying_args(added, from, record, options);
  return id;
}

void TraceGraph::feed_known_varying_args(Node& added, const Node& from, const OpRecord& record,
                                         const MergeOptions& options) const {
  std::vector<std::size_t> args = varying_.args_of(record);
  if (args.empty()) return;
  OpIdentity fed = added.identity;
  bool any = false;
  for (std::size_t arg : args) {
    bool allowed = fed.args()[arg].scalar_kind() == ScalarKind::kInt ? options.generalise_ints
                                                                     : options.generalise_doubles;
    if (!allowed) continue;
    fed.generalise_arg(arg);
    any = true;
  }
  // A sibling already takes some value there (the scalar chose a path after all): stay
  // concrete, as generalise_child would.
  if (!any || overlaps_a_sibling(from, added.id, fed)) return;
  added.identity = std::move(fed);
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
  // Inputs seen before are looked up only: most ops read the same few states and feeds, and
  // building their descriptions first (a metadata copy each) was most of this loop's cost.
  for (const OpRecord& record : trace.records) {
    for (const TensorInput& input : record.identity.inputs()) {
      if (const auto* state = std::get_if<State>(&input.ref)) {
        if (states_.count(state->id) == 0) states_[state->id] = {state->id, input.meta, ""};
      } else if (const auto* feed = std::get_if<Feed>(&input.ref)) {
        if (feeds_.count(feed->index) == 0) feeds_[feed->index] = {feed->index, input.meta};
      } else if (const auto* constant = std::get_if<Constant>(&input.ref)) {
        if (constants_.count(constant->id) == 0) {
          constants_[constant->id] = {constant->id, input.meta};
        }
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

void TraceGraph::walk(
    const std::function<void(const Node&, const std::vector<NodeId>&)>& visit) const {
  std::vector<NodeId> path;
  std::vector<NodeId> pending(root_.children.rbegin(), root_.children.rend());
  while (!pending.empty()) {
    const Node& at = nodes_[pending.back()];
    pending.pop_back();
    path.resize(at.step);  // drop the part of the path below the branch we came back to
    path.push_back(at.id);
    visit(at, path);
    pending.insert(pending.end(), at.children.rbegin(), at.children.rend());
  }
}

void TraceGraph::mark_fetch(NodeId id) { mutable_node(id).flags.is_fetch = true; }

void TraceGraph::mark_warns(NodeId id) { mutable_node(id).flags.warns = true; }

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
  for (const Node& node : graph.nodes_) graph.varying_.note_all(node);
  return graph;
}

}  // namespace terra::graph
