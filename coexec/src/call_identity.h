// What identity needs of a call beyond the IR: the engine-defined context bits and a
// readable form for explanations. Private to coexec/ (engine_impl.h declares the members that
// build a call's identity: build_call, input_ref, register_outputs).
#pragma once

#include <cstdint>
#include <string>

#include "op_table.h"
#include "terra/graph/op_identity.h"

namespace terra::coexec {

// Engine-defined context bits of an op's identity: grad mode, and the default dtype for
// factories (which read it when no dtype is passed).
std::uint64_t identity_context(const OpInfo& info);

// "aten::add.Tensor(float32[16,4] of step 3, ...)": for explain() and debug output.
std::string describe_identity(const graph::OpIdentity& identity);

}  // namespace terra::coexec
