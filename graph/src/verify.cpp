#include "terra/graph/verify.h"

#include <sstream>
#include <unordered_set>
#include <variant>
#include <vector>

#include "terra/graph/trace_graph.h"

namespace terra::graph {
namespace {

std::string describe(const Node& node) {
  if (node.is_root()) return "root";
  return "node " + std::to_string(node.id) + " (" + node.identity.op().qualified() + ")";
}

[[noreturn]] void fail(const Node& node, const std::string& rule) {
  throw VerifyError("malformed TraceGraph: " + describe(node) + ": " + rule);
}

bool valid_id(const TraceGraph& graph, NodeId id) { return id < graph.size(); }

// No op is accepted by two children: merge and Cursor rely on a unique choice.
void check_siblings_disjoint(const TraceGraph& graph, const Node& node) {
  for (std::size_t i = 0; i < node.children.size(); ++i) {
    for (std::size_t j = i + 1; j < node.children.size(); ++j) {
      const Node& a = graph.node(node.children[i]);
      if (a.identity.overlaps(graph.node(node.children[j]).identity)) {
        fail(node, "children " + std::to_string(a.id) + " and " + std::to_string(node.children[j]) +
                       " both accept some op");
      }
    }
  }
}

// Children exist, point back, sit one step deeper, appear once; counts are conserved.
void check_children(const TraceGraph& graph, const Node& node) {
  if (node.taken.size() != node.children.size()) fail(node, "taken has not one count per child");
  if (node.last_taken < -1 || node.last_taken >= static_cast<std::int32_t>(node.children.size())) {
    fail(node, "last_taken out of range");
  }
  std::unordered_set<NodeId> seen;
  std::uint64_t taken_total = 0;
  for (std::size_t i = 0; i < node.children.size(); ++i) {
    NodeId child_id = node.children[i];
    if (!valid_id(graph, child_id)) fail(node, "child " + std::to_string(child_id) + " missing");
    if (!seen.insert(child_id).second) fail(node, "child listed twice");
    const Node& child = graph.node(child_id);
    if (child.parent != node.id)
      fail(node, "child " + std::to_string(child_id) + " has another parent");
    std::uint32_t expected_step = node.is_root() ? 0 : node.step + 1;
    if (child.step != expected_step) fail(child, "step is not its parent's step + 1");
    if (child.count != node.taken[i]) fail(node, "taken count differs from the child's count");
    taken_total += node.taken[i];
  }
  if (node.count != taken_total + node.ends) fail(node, "count != sum(taken) + ends");
  check_siblings_disjoint(graph, node);
}

// Node ids are dense and every node is listed once by its parent.
void check_structure(const TraceGraph& graph) {
  const Node& root = graph.root();
  if (root.id != kRootId || root.parent != kRootId) fail(root, "root must have id/parent kRootId");
  check_children(graph, root);
  for (NodeId id = 0; id < graph.size(); ++id) {
    const Node& node = graph.node(id);
    if (node.id != id) fail(node, "stored at index " + std::to_string(id));
    if (node.parent != kRootId && !valid_id(graph, node.parent)) fail(node, "parent missing");
    const std::vector<NodeId>& siblings = graph.node(node.parent).children;
    std::size_t listed = 0;
    for (NodeId sibling : siblings) listed += sibling == id ? 1 : 0;
    if (listed != 1) fail(node, "not listed exactly once among its parent's children");
    check_children(graph, node);
  }
}

void check_input_ref(const TraceGraph& graph, const Node& node, const std::vector<NodeId>& path,
                     const InputRef& ref) {
  if (const auto* output = std::get_if<NodeOutput>(&ref)) {
    if (output->step >= node.step) {
      fail(node, "input refers to step " + std::to_string(output->step) + ", not an ancestor");
    }
    const Node& producer = graph.node(path[output->step]);
    if (output->output >= producer.outputs.size()) {
      fail(node, "input refers to output " + std::to_string(output->output) + " of " +
                     describe(producer) + ", which has " + std::to_string(producer.outputs.size()));
    }
  } else if (const auto* state = std::get_if<State>(&ref)) {
    if (!graph.states().count(state->id)) fail(node, "unknown state " + std::to_string(state->id));
  } else if (const auto* feed = std::get_if<Feed>(&ref)) {
    if (!graph.feeds().count(feed->index))
      fail(node, "unknown feed " + std::to_string(feed->index));
  } else if (const auto* constant = std::get_if<Constant>(&ref)) {
    if (!graph.constants().count(constant->id)) {
      fail(node, "unknown constant " + std::to_string(constant->id));
    }
  }
}

// Every tensor input is named by exactly one tensor slot of the args.
void check_tensor_slots(const Node& node) {
  std::string problem = node.identity.tensor_slot_problem();
  if (!problem.empty()) fail(node, problem);
}

void check_outputs(const Node& node) {
  const auto inputs = static_cast<std::int32_t>(node.identity.inputs().size());
  for (const OutputInfo& output : node.outputs) {
    bool fresh = output.alias == AliasKind::kFresh;
    if (fresh ? output.input != -1 : (output.input < 0 || output.input >= inputs)) {
      fail(node, "output alias refers to input " + std::to_string(output.input));
    }
  }
}

void check_identity_hash(const Node& node) {
  OpIdentity recomputed = node.identity;
  recomputed.rehash();
  if (recomputed.hash() != node.identity.hash() ||
      recomputed.has_scalar_feeds() != node.identity.has_scalar_feeds()) {
    fail(node, "cached identity hash is stale");
  }
}

}  // namespace

void verify(const TraceGraph& graph) {
  check_structure(graph);  // first: walk() relies on a sound tree
  graph.walk([&graph](const Node& node, const std::vector<NodeId>& path) {
    check_identity_hash(node);
    for (const TensorInput& input : node.identity.inputs()) {
      check_input_ref(graph, node, path, input.ref);
    }
    check_tensor_slots(node);
    check_outputs(node);
  });
}

}  // namespace terra::graph
