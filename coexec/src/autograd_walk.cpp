// Walking an autograd graph without running it (see autograd_walk.h).
#include "autograd_walk.h"

#include <torch/csrc/autograd/anomaly_mode.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/accumulate_grad.h>
#include <torch/csrc/autograd/variable.h>

#include <cstring>
#include <typeinfo>
#include <unordered_map>

namespace terra::coexec {
namespace {

using torch::autograd::Node;

bool has_hooks(Node& node) {
  return !node.pre_hooks().empty() || !node.tensor_pre_hooks().empty() ||
         !node.retains_grad_hooks().empty() || !node.post_hooks().empty() ||
         node.tensor_post_acc_grad_hooks() != nullptr;
}

// A Function defined in Python (torch.autograd.Function, a module's full backward hook, the
// logging hooks) runs Python when applied; its C++ type is torch::autograd::PyNode, whose
// header needs Python, so it is known by its mangled name.
bool runs_python(const Node& node) { return std::strstr(typeid(node).name(), "PyNode") != nullptr; }

}  // namespace

AutogradWalk walk_autograd_graph(const std::vector<at::Tensor>& roots) {
  AutogradWalk walk;
  if (torch::autograd::AnomalyMode::is_enabled()) {
    walk.reason = "anomaly mode";
    return walk;
  }
  std::unordered_map<const Node*, std::int64_t> index;
  auto discover = [&](const std::shared_ptr<Node>& node) -> std::int64_t {
    auto [found, fresh] = index.emplace(node.get(), static_cast<std::int64_t>(walk.nodes.size()));
    if (fresh) walk.nodes.push_back(node);
    return found->second;
  };
  for (const at::Tensor& root : roots) {
    const std::shared_ptr<Node> grad_fn = root.defined() ? root.grad_fn() : nullptr;
    if (!grad_fn || !root.is_cpu()) {
      walk.reason = grad_fn ? "a root not on the CPU" : "a root without grad_fn";
      return walk;
    }
    walk.signature.push_back(static_cast<std::uint64_t>(discover(grad_fn)));
    walk.signature.push_back(root.output_nr());
  }
  for (std::size_t i = 0; i < walk.nodes.size(); ++i) {
    Node& node = *walk.nodes[i];
    if (has_hooks(node)) {
      walk.reason = "a hook";
      return walk;
    }
    if (runs_python(node)) {
      walk.reason = "a Python function";
      return walk;
    }
    walk.signature.push_back(typeid(node).hash_code());
    if (auto* accumulate = dynamic_cast<torch::autograd::AccumulateGrad*>(&node)) {
      const at::Tensor& leaf = accumulate->variable;
      if (!leaf.defined() || !leaf.is_cpu()) {
        walk.reason = "a leaf not on the CPU";
        return walk;
      }
      // A gradient to accumulate into: autograd adds in place, an op like any other; a
      // sparse one is merged by other rules.
      const at::Tensor& grad = leaf.grad();
      if (grad.defined() && (!grad.is_cpu() || grad.layout() != at::kStrided)) {
        walk.reason = "a leaf with a sparse or non-CPU gradient";
        return walk;
      }
      walk.signature.push_back(grad.defined() ? 1 : 0);
      walk.leaves.push_back(leaf);
    }
    const auto& edges = node.next_edges();
    walk.signature.push_back(edges.size());
    for (const auto& edge : edges) {
      walk.signature.push_back(edge.function ? static_cast<std::uint64_t>(discover(edge.function))
                                             : ~std::uint64_t{0});
      walk.signature.push_back(edge.input_nr);
    }
  }
  walk.plain = true;
  return walk;
}

}  // namespace terra::coexec
