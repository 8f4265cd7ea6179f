// Canonical, deterministic text forms of the IR, for tests, error messages and
// `%terra explain`. Equal values print equal text; nothing depends on addresses or time.
#pragma once

#include <string>

#include "terra/graph/arg.h"
#include "terra/graph/input_ref.h"
#include "terra/graph/op_identity.h"
#include "terra/graph/op_record.h"
#include "terra/graph/tensor_meta.h"

namespace terra::graph {

class TraceGraph;
struct Node;

// "float32[32,64]" plus " s=[64,1]" when not contiguous, "+8" for a storage offset, "@cuda:0"
// off the CPU and " grad" when requires_grad.
std::string to_string(const TensorMeta& meta);
// 1, 2.5, true, None, "text", [1,2], feed:double, other(memory_format:contiguous), $0, [$1,$2].
std::string to_string(const Arg& arg);
// %3.0 (node output at step 3, output 0), state:7, feed:0, const:2.
std::string to_string(const InputRef& ref);
// "aten::addmm(%3.0, state:2, feed:0, 1, 1)" with tensor args shown by their refs.
std::string to_string(const OpIdentity& identity);
// The identity followed by " -> outputs @file:line [module]".
std::string to_string(const OpRecord& record);

// One line per node in depth-first order (children in creation order), indented by branch
// depth, with counts and branch choices; then the states, feeds and constants tables.
std::string print(const TraceGraph& graph);

}  // namespace terra::graph
