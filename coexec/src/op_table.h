// Per-operator behaviour of the engine, in one table keyed by operator (STYLE.md §7), and the
// translation of a boxed call into the IR's identity (graph::OpIdentity).
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>

#include <string>
#include <vector>

#include "terra/graph/op_identity.h"
#include "terra/graph/op_record.h"
#include "value_checks.h"

namespace terra::coexec {

// How co-execution answers an operator.
enum class OpClass : std::uint8_t {
  kQueued,      // confirmed, then run by the GraphRunner; Python gets placeholders
  kPythonSide,  // touches metadata or allocates only (views, empty, non-random factories):
                // runs at once on the Python thread, no wait
  kFetch,       // Python needs its value or its output shape depends on data: sync, then eager
};

// What the engine knows about one operator, computed once from its schema.
struct OpInfo {
  graph::OperatorName name;  // with an engine key for fast compares
  OpClass op_class = OpClass::kQueued;
  bool mutates = false;          // some argument is written (in-place, out=)
  bool returns_view = false;     // some return aliases an argument without writing it
  bool is_random = false;        // takes a Generator
  bool has_tensor_args = false;  // false: a factory
  bool data_dependent = false;   // output shape depends on input values
  std::size_t num_arguments = 0;
  std::size_t num_returns = 0;
  bool returns_supported = true;  // every return is a Tensor or a Tensor[]
  // Neither takes nor returns tensors (profiler ranges, ...): cannot touch tensor memory, so
  // it runs at once, unrecorded and without a sync.
  bool passthrough = false;
  // Its CPU kernels raise on some input values (value_checks.h); null for most operators.
  const ValueCheck* value_check = nullptr;
};

// The OpInfo of `op` (cached; first call per operator reads the schema). Main thread only.
const OpInfo& op_info(const c10::OperatorHandle& op);

// torch's dtype name ("float32") and device name ("cpu", "cuda:0").
std::string dtype_name(at::ScalarType type);
std::string device_name(c10::Device device);

// Full metadata of a tensor as the IR keeps it.
graph::TensorMeta tensor_meta(const at::Tensor& tensor);

// True when co-execution can represent this tensor: strided, dense CPU or CUDA, no Python
// subclass, not quantized/nested/sparse/meta.
bool tensor_supported(const at::Tensor& tensor);

}  // namespace terra::coexec
