// The autograd graph a backward call is about to run, seen before it runs (backward_replay.cpp):
// whether every node of it is plain C++ that runs no Python (no hooks, no Python-defined
// Function), and a signature of its shape that two graphs share only when the autograd engine
// would call the same node types along the same edges in both.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace torch::autograd {
struct Node;
}

namespace terra::coexec {

struct AutogradWalk {
  // False when running the graph could run Python or could not be replayed (see reason).
  bool plain = false;
  const char* reason = "";
  // Per node in discovery order: its type, and per edge the target's discovery index (or -1
  // for an edge to nothing) and input number.
  std::vector<std::uint64_t> signature;
  // Every node reached, in discovery order (their saved tensors are released as eager would).
  std::vector<std::shared_ptr<torch::autograd::Node>> nodes;
  // The leaves whose gradients the graph accumulates, in discovery order (CPU; a gradient
  // they already have is strided and on the CPU).
  std::vector<at::Tensor> leaves;
};

// Walks the graph from the grad_fn of each root (all must have one) without running it.
AutogradWalk walk_autograd_graph(const std::vector<at::Tensor>& roots);

}  // namespace terra::coexec
