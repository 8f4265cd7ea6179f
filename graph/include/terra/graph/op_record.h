// OpRecord: one op as traced: its identity plus what the trace learned about it (outputs,
// aliasing, source location, module path, flags). Identity is what matching compares; the
// rest is carried along into the node.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "terra/graph/op_identity.h"
#include "terra/graph/shared_string.h"
#include "terra/graph/tensor_meta.h"

namespace terra::graph {

// How an output relates to the op's inputs.
enum class AliasKind : std::uint8_t {
  kFresh,  // new storage
  kView,   // a view of input `input` (shares storage, own metadata)
  kSame,   // input `input` itself (in-place ops and out= variants return it)
};

struct OutputInfo {
  TensorMeta meta;
  AliasKind alias = AliasKind::kFresh;
  std::int32_t input = -1;  // index into OpIdentity::inputs when alias != kFresh

  static OutputInfo fresh(TensorMeta meta) { return {std::move(meta), AliasKind::kFresh, -1}; }
  friend bool operator==(const OutputInfo& a, const OutputInfo& b) {
    return a.alias == b.alias && a.input == b.input && a.meta == b.meta;
  }
  friend bool operator!=(const OutputInfo& a, const OutputInfo& b) { return !(a == b); }
};

// Python source location of the call that issued the op (line 0: unknown).
struct SourceLocation {
  SharedString file;
  std::int32_t line = 0;
  friend bool operator==(const SourceLocation& a, const SourceLocation& b) {
    return a.line == b.line && a.file == b.file;
  }
};

struct OpFlags {
  bool is_view_op = false;            // returns a view of an input
  bool is_inplace = false;            // mutates an input
  bool is_fetch = false;              // Python waited for this op's value (item(), bool(t)...)
  bool is_random = false;             // consumes the RNG stream
  bool data_dependent_shape = false;  // output shape depends on input values (nonzero...)
  // Its kernel raised a warning (TORCH_WARN): run where Python sees the warning, as in eager.
  bool warns = false;
};

struct OpRecord {
  OpIdentity identity;
  std::vector<OutputInfo> outputs;
  SourceLocation source;
  std::string module_path;  // slash-separated: "model/encoder/0/linear"; "" at top level
  OpFlags flags;
};

}  // namespace terra::graph
