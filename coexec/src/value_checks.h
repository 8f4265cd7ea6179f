// ValueCheck: operators whose CPU kernels raise on some input *values* — an index out of
// range, an integer division by zero, probabilities that are not, a target class that does
// not exist. Eager raises such an error at the op, where the program may catch it (a
// try/except around an embedding lookup, a Cholesky retried with jitter). In co-execution
// the kernel runs later on the GraphRunner, so its error would surface at a later op, past
// the program's handler, after Python had gone on. So before queuing such an op the engine
// waits for the values the check reads (usually a batch's labels or indices, computed long
// before) and checks them; an op that may raise runs at once on the Python thread instead,
// where eager raises exactly its own error (coexecute_matched).
//
// Ops whose only work is a check (`_linalg_check_errors`, `_assert_async`) are fetches
// instead (op_table.cpp). On CUDA eager reports such kernel errors asynchronously too, so only
// CPU tensors are checked.
#pragma once

#include <ATen/core/ivalue.h>
#include <c10/util/ArrayRef.h>
#include <c10/util/FunctionRef.h>

#include <string_view>

namespace terra::coexec {

using OpArguments = c10::ArrayRef<c10::IValue>;

struct ValueCheck {
  // Calls `visit` for each tensor among `args` whose values `may_raise` reads.
  void (*for_each_checked)(OpArguments args, c10::function_ref<void(const at::Tensor&)> visit);
  // True when the kernel may raise on `args`, read once the checked tensors are computed.
  // It may answer true where the kernel would not raise (the op then only runs at once), but
  // never false where it would.
  bool (*may_raise)(OpArguments args);
};

// The check of operator `name` ("aten::embedding"), or null when its kernels raise on no value.
const ValueCheck* value_check(std::string_view name);

// Ops that do nothing but check values (a failed factorization's info): fetches.
bool is_check_only_op(std::string_view name);

}  // namespace terra::coexec
