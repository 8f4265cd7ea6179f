// Per-operator behaviour tables and tensor metadata helpers (see op_table.h).
#include "op_table.h"

#include <array>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

namespace terra::coexec {
namespace {

// Operators whose output shape depends on input values: co-execution cannot predict their
// placeholders, so it waits for the runner and runs them eagerly (DESIGN §6).
const std::unordered_set<std::string_view>& data_dependent_ops() {
  static const std::unordered_set<std::string_view> ops = {
      "aten::nonzero",
      "aten::unique_consecutive",
      "aten::unique_dim",
      "aten::_unique",
      "aten::_unique2",
      "aten::unique_dim_consecutive",
      "aten::masked_select",
      "aten::repeat_interleave",
      "aten::bincount",
      "aten::argwhere",
      "aten::nonzero_numpy",
      // Packed sequences: the sizes follow the lengths' values.
      "aten::_pack_padded_sequence",
      "aten::_pad_packed_sequence",
  };
  return ops;
}

// Operators that change a tensor's metadata or storage in place: run them on the Python
// thread after a sync so that Python sees the new metadata at once.
const std::unordered_set<std::string_view>& metadata_mutating_ops() {
  static const std::unordered_set<std::string_view> ops = {
      "aten::resize_",         "aten::resize_as_",        "aten::set_",
      "aten::_resize_output_", "aten::resize_as_sparse_", "aten::_coalesced_",
      "aten::sparse_resize_",
  };
  return ops;
}

// In-place view operators: they only rewrite sizes/strides of `self`, never its data.
const std::unordered_set<std::string_view>& inplace_view_ops() {
  static const std::unordered_set<std::string_view> ops = {
      "aten::t_",          "aten::transpose_", "aten::squeeze_",  "aten::unsqueeze_",
      "aten::as_strided_", "aten::detach_",    "aten::swapaxes_", "aten::swapdims_",
  };
  return ops;
}

// Non-tensor results that need no tensor values (metadata queries): answered at once.
const std::unordered_set<std::string_view>& metadata_query_ops() {
  static const std::unordered_set<std::string_view> ops = {
      "aten::is_same_size",
      "aten::_has_compatible_shallow_copy_type",
      "aten::sym_size",
      "aten::sym_stride",
      "aten::sym_numel",
      "aten::sym_storage_offset",
      "aten::size",
      "aten::stride",
      "aten::numel",
      "aten::dim",
      "aten::is_contiguous",
      "aten::result_type",
      "aten::can_cast",
      "aten::promote_types",
      "aten::_version",
      "aten::is_complex",
      "aten::is_floating_point",
      "aten::is_conj",
      "aten::is_neg",
  };
  return ops;
}

// Operators that only allocate (uninitialised memory): Python may write into the result
// directly (torch.tensor(list) does), so they must run at once on the Python thread.
const std::unordered_set<std::string_view>& allocation_ops() {
  static const std::unordered_set<std::string_view> ops = {
      "aten::empty",      "aten::empty_strided",  "aten::new_empty", "aten::new_empty_strided",
      "aten::empty_like", "aten::empty_permuted",
  };
  return ops;
}

bool is_tensor_type(const c10::TypePtr& type) { return type->kind() == c10::TypeKind::TensorType; }

bool is_tensor_list_type(const c10::TypePtr& type) {
  if (type->kind() != c10::TypeKind::ListType) return false;
  return is_tensor_type(type->castRaw<c10::ListType>()->getElementType());
}

bool mentions_tensor(const c10::TypePtr& type) {
  if (is_tensor_type(type)) return true;
  for (const auto& contained : type->containedTypes()) {
    if (mentions_tensor(contained)) return true;
  }
  return false;
}

bool mentions_generator(const c10::TypePtr& type) {
  if (type->kind() == c10::TypeKind::GeneratorType) return true;
  for (const auto& contained : type->containedTypes()) {
    if (mentions_generator(contained)) return true;
  }
  return false;
}

// An operator outside ATen (torch.library.custom_op, an extension's TORCH_LIBRARY) may have
// a Python kernel: on the GraphRunner it would need the GIL and run the program's Python out
// of order (a `.numpy()` in it waited on the runner itself). It runs at once, in order.
bool is_builtin(std::string_view name) {
  return name.rfind("aten::", 0) == 0 || name.rfind("prims::", 0) == 0;
}

OpClass classify(const OpInfo& info, std::string_view name, const c10::FunctionSchema& schema) {
  if (!is_builtin(name)) return OpClass::kFetch;
  if (metadata_mutating_ops().count(name)) return OpClass::kFetch;
  if (is_check_only_op(name)) return OpClass::kFetch;  // raises where eager raises
  if (inplace_view_ops().count(name)) return OpClass::kPythonSide;
  if (info.data_dependent) return OpClass::kFetch;
  if (!info.returns_supported) {
    return metadata_query_ops().count(name) ? OpClass::kPythonSide : OpClass::kFetch;
  }
  if (allocation_ops().count(name)) return OpClass::kPythonSide;
  if (info.returns_view && !info.mutates) return OpClass::kPythonSide;
  // A factory that draws no random numbers reads nothing: running it at once costs Python
  // its kernel but keeps scalar arguments that shape it (arange) out of the graph's guesses.
  if (!info.has_tensor_args && !info.is_random && !info.mutates && schema.returns().size() > 0) {
    return OpClass::kPythonSide;
  }
  return OpClass::kQueued;
}

OpInfo compute_op_info(const c10::OperatorHandle& op, std::int64_t key) {
  const c10::FunctionSchema& schema = op.schema();
  OpInfo info;
  info.name = graph::OperatorName(schema.name(), schema.overload_name(), key);
  info.num_arguments = schema.arguments().size();
  info.num_returns = schema.returns().size();
  for (const auto& argument : schema.arguments()) {
    const auto* alias = argument.alias_info();
    if (alias != nullptr && alias->isWrite()) info.mutates = true;
    if (mentions_tensor(argument.type())) info.has_tensor_args = true;
    if (mentions_generator(argument.type())) info.is_random = true;
  }
  for (const auto& ret : schema.returns()) {
    const auto* alias = ret.alias_info();
    if (alias != nullptr && !alias->isWrite()) info.returns_view = true;
    if (!is_tensor_type(ret.type()) && !is_tensor_list_type(ret.type())) {
      info.returns_supported = false;
    }
  }
  bool returns_tensors = false;
  for (const auto& ret : schema.returns()) returns_tensors |= mentions_tensor(ret.type());
  info.passthrough = !info.has_tensor_args && !returns_tensors;
  // A Tensor[] return is sized by the run, so only a lone one is supported.
  bool has_list_return = false;
  for (const auto& ret : schema.returns()) has_list_return |= is_tensor_list_type(ret.type());
  if (has_list_return && schema.returns().size() != 1) info.returns_supported = false;
  const std::string qualified = schema.name();
  info.data_dependent = data_dependent_ops().count(qualified) > 0;
  info.op_class = classify(info, qualified, schema);
  info.value_check = value_check(qualified);
  return info;
}

}  // namespace

const OpInfo& op_info(const c10::OperatorHandle& op) {
  // Keyed by the schema's address, which the dispatcher keeps stable for a registered op.
  static std::unordered_map<const void*, OpInfo> table;
  const void* key = &op.schema();
  auto found = table.find(key);
  if (found != table.end()) return found->second;
  auto [inserted, _] =
      table.emplace(key, compute_op_info(op, static_cast<std::int64_t>(table.size())));
  return inserted->second;
}

std::string dtype_name(at::ScalarType type) {
  switch (type) {
    case at::kFloat:
      return "float32";
    case at::kDouble:
      return "float64";
    case at::kHalf:
      return "float16";
    case at::kBFloat16:
      return "bfloat16";
    case at::kLong:
      return "int64";
    case at::kInt:
      return "int32";
    case at::kShort:
      return "int16";
    case at::kChar:
      return "int8";
    case at::kByte:
      return "uint8";
    case at::kBool:
      return "bool";
    case at::kComplexFloat:
      return "complex64";
    case at::kComplexDouble:
      return "complex128";
    default: {
      std::string name = c10::toString(type);
      for (auto& c : name) c = static_cast<char>(std::tolower(c));
      return name;
    }
  }
}

std::string device_name(c10::Device device) {
  if (device.is_cpu()) return "cpu";
  return device.str();
}

graph::TensorMeta tensor_meta(const at::Tensor& tensor) {
  graph::TensorMeta meta;
  meta.sizes.assign(tensor.sizes().begin(), tensor.sizes().end());
  meta.strides.assign(tensor.strides().begin(), tensor.strides().end());
  meta.storage_offset = tensor.storage_offset();
  meta.dtype = dtype_name(tensor.scalar_type());
  meta.device = device_name(tensor.device());
  meta.requires_grad = tensor.requires_grad();
  return meta;
}

bool tensor_supported(const at::Tensor& tensor) {
  if (!tensor.defined()) return true;
  if (tensor.layout() != at::kStrided) return false;
  const c10::DispatchKeySet keys = tensor.key_set();
  constexpr std::array<c10::DispatchKey, 5> unsupported = {
      c10::DispatchKey::Python, c10::DispatchKey::PythonTLSSnapshot,
      c10::DispatchKey::Functionalize, c10::DispatchKey::Conjugate, c10::DispatchKey::Negative};
  for (auto key : unsupported) {
    if (keys.has(key)) return false;
  }
  if (tensor.is_quantized() || tensor.is_nested() || tensor.is_meta()) return false;
  const auto type = tensor.device().type();
  if (type != c10::DeviceType::CPU && type != c10::DeviceType::CUDA) return false;
  if (!tensor.unsafeGetTensorImpl()->has_storage()) return false;
  return true;
}

}  // namespace terra::coexec
