// Backward passes replayed from a recording (docs/architecture.md, "Backward passes
// replayed"). In a co-executed iteration without a recording, `loss.backward()` runs the
// autograd engine on the Python thread, and every op it issues is matched against the graph
// and queued like any other. The first time a backward call is seen at a graph position, the
// ops it issues are recorded with their arguments (tensors as references into the
// iteration); when a later iteration calls backward at the same position on an autograd
// graph of the same shape, the engine issues the recorded ops itself, through the path of a
// matched op (coexecute_matched), sets or keeps the leaves' gradients and releases the
// graph's saved tensors, without running the autograd engine: the Python thread does less
// than eager does.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/AutogradState.h>
#include <c10/core/impl/LocalDispatchKeySet.h>

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "graph_runner.h"
#include "terra/graph/input_ref.h"
#include "terra/graph/node.h"

namespace terra::coexec {

struct OpInfo;

// A tensor argument of a recorded op: where it came from and what it looked like.
struct RecordedTensor {
  std::uint32_t argument = 0;  // index into RecordedOp::arguments
  std::int32_t element = -1;   // position in a Tensor[] argument; -1: the argument itself
  graph::InputRef ref;
  std::int32_t external = -1;  // index into BackwardBlock::externals; -1: made in the block
  OutputSpec meta;             // sizes, strides, offset, dtype, device
  // `ref` was found through the tensor's storage (ValueEntry::by_storage): rebuilt over that
  // memory as `meta` says, never taken from the tensor registered as `ref`.
  bool by_storage = false;
};

// One op the autograd engine issued, as the engine saw it (after interception).
struct RecordedOp {
  graph::NodeId node = 0;
  const OpInfo* info = nullptr;
  std::optional<c10::OperatorHandle> op;
  c10::DispatchKeySet keys;
  c10::DispatchKeySet tls_included, tls_excluded;  // the thread-local keys
  c10::AutogradState autograd_state{false, false, false, false};
  std::vector<c10::IValue> arguments;  // tensors left undefined (see tensors)
  std::vector<RecordedTensor> tensors;
  // Outputs of the block's ops (op index, output index) read for the last time by this op:
  // dropped after it, as autograd drops a gradient once its consumer ran (memory).
  std::vector<std::pair<std::uint32_t, std::uint32_t>> last_reads;
};

// What backward did to a leaf's .grad: nothing, added into the gradient it had (the same
// tensor, written by an op of the block), or set it to an output of an op of the block.
struct LeafGrad {
  enum class Kind : std::uint8_t { kNone, kKept, kAssigned };
  Kind kind = Kind::kNone;
  graph::NodeOutput output;  // kAssigned
};

// A recorded backward pass, keyed by the graph node at which it started.
struct BackwardBlock {
  std::vector<std::uint64_t> signature;  // the autograd graph's shape and leaves
  std::uint32_t first_step = 0;
  std::vector<RecordedOp> ops;
  std::vector<LeafGrad> grads;             // per leaf, in the autograd walk's order
  std::vector<graph::InputRef> externals;  // tensors from before the block
};

// A recording in progress (between Engine::Impl::begin_backward and end_backward).
struct BackwardRecording {
  graph::NodeId key = 0;
  std::vector<std::uint64_t> signature;
  std::uint32_t first_step = 0;
  std::vector<at::Tensor> leaves;
  std::vector<const c10::TensorImpl*> grads_before;  // per leaf; null: none
  std::uint64_t fetches_before = 0, eager_ops_before = 0;
  bool replayable = true;  // false once an op cannot be replayed
  std::vector<RecordedOp> ops;
};

}  // namespace terra::coexec
