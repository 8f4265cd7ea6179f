// The operators whose CPU kernels raise on values, and what each one checks (value_checks.h).
// Each rule mirrors the kernel's own TORCH_CHECK, erring on the side of "may raise".
#include "value_checks.h"

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>
#include <c10/core/WrapDimMinimal.h>

#include <cmath>
#include <cstdint>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "stack_arguments.h"

namespace terra::coexec {
namespace {

using Visit = c10::function_ref<void(const at::Tensor&)>;

template <std::size_t I>
void argument(OpArguments args, Visit visit) {
  if (args.size() > I) for_each_tensor_in(args[I], visit);
}

bool is_mask(const at::Tensor& index) {
  return index.scalar_type() == at::kBool || index.scalar_type() == at::kByte;
}

// The integer index tensors of an index list (a boolean mask raises on no value: not read).
void integer_indices(OpArguments args, Visit visit) {
  if (args.size() < 2) return;
  for_each_tensor_in(args[1], [&](const at::Tensor& index) {
    if (!is_mask(index)) visit(index);
  });
}

// bernoulli(self) reads self; bernoulli_(self, Tensor p) reads p; a float p reads nothing.
void bernoulli_probabilities(OpArguments args, Visit visit) {
  if (args.size() > 1 && args[1].isTensor()) {
    for_each_tensor_in(args[1], visit);
  } else if (args.size() < 2 || !args[1].isDouble()) {
    argument<0>(args, visit);
  }
}

bool is_defined_tensor(const c10::IValue& value) {
  return value.isTensor() && value.toTensor().defined();
}

// The values of `tensor` as contiguous int64 (a copy only when they are not already).
at::Tensor as_int64(const at::Tensor& tensor) {
  at::Tensor longs = tensor.scalar_type() == at::kLong ? tensor : tensor.to(at::kLong);
  return longs.is_contiguous() ? longs : longs.contiguous();
}

at::Tensor as_double(const at::Tensor& tensor) {
  at::Tensor doubles = tensor.scalar_type() == at::kDouble ? tensor : tensor.to(at::kDouble);
  return doubles.is_contiguous() ? doubles : doubles.contiguous();
}

// True when some value of the integer `index` lies outside [low, high) and is not `allowed`.
bool any_outside(const at::Tensor& index, std::int64_t low, std::int64_t high,
                 std::optional<std::int64_t> allowed = std::nullopt) {
  if (!index.is_cpu()) return false;
  if (!c10::isIntegralType(index.scalar_type(), /*includeBool=*/false)) return false;
  const at::Tensor values = as_int64(index);
  const std::int64_t* data = values.const_data_ptr<std::int64_t>();
  for (std::int64_t i = 0, n = values.numel(); i < n; ++i) {
    if ((data[i] < low || data[i] >= high) && data[i] != allowed) return true;
  }
  return false;
}

std::int64_t size_along(const at::Tensor& self, std::int64_t dim) {
  if (self.dim() == 0) return 1;
  return self.size(c10::maybe_wrap_dim(dim, self.dim()));
}

// (self, dim, index, ...): index_select, gather, scatter*, index_add/copy/fill.
bool index_along_dim_out_of_range(OpArguments args) {
  if (args.size() < 3 || !is_defined_tensor(args[0]) || !args[1].isInt() ||
      !is_defined_tensor(args[2])) {
    return true;
  }
  const at::Tensor& self = args[0].toTensor();
  return any_outside(args[2].toTensor(), 0, size_along(self, args[1].toInt()));
}

// embedding(weight, indices, ...): rows of weight.
bool embedding_index_out_of_range(OpArguments args) {
  if (args.size() < 2 || !is_defined_tensor(args[0]) || !is_defined_tensor(args[1])) return true;
  return any_outside(args[1].toTensor(), 0, size_along(args[0].toTensor(), 0));
}

// embedding_dense_backward(grad_output, indices, num_weights, ...).
bool embedding_backward_index_out_of_range(OpArguments args) {
  if (args.size() < 3 || !is_defined_tensor(args[1]) || !args[2].isInt()) return true;
  return any_outside(args[1].toTensor(), 0, args[2].toInt());
}

// embedding_renorm_(self, indices, max_norm, norm_type) (embedding's max_norm): each index
// selects a row as self[index] does, wrapping from -rows.
bool renorm_index_out_of_range(OpArguments args) {
  if (args.size() < 2 || !is_defined_tensor(args[0]) || !is_defined_tensor(args[1])) return true;
  const std::int64_t rows = size_along(args[0].toTensor(), 0);
  return any_outside(args[1].toTensor(), -rows, rows);
}

// index.Tensor / index_put_(self, indices, ...): an integer index at dimension d wraps from
// -size(d); a boolean mask takes as many dimensions as it has and raises on no value.
bool advanced_index_out_of_range(OpArguments args) {
  if (args.size() < 2 || !is_defined_tensor(args[0]) || !args[1].isList()) return true;
  const at::Tensor& self = args[0].toTensor();
  std::int64_t dim = 0;
  for (const c10::IValue& element : args[1].toListRef()) {
    if (!is_defined_tensor(element)) {
      ++dim;  // a slice or None
      continue;
    }
    const at::Tensor& index = element.toTensor();
    if (is_mask(index)) {
      dim += index.dim();
      continue;
    }
    if (dim >= self.dim()) return true;  // the kernel's "too many indices" (metadata)
    const std::int64_t size = self.size(dim);
    if (any_outside(index, -size, size)) return true;
    ++dim;
  }
  return false;
}

// take / put_(self, index, ...): flat indices, wrapping from -numel.
bool flat_index_out_of_range(OpArguments args) {
  if (args.size() < 2 || !is_defined_tensor(args[0]) || !is_defined_tensor(args[1])) return true;
  const std::int64_t numel = args[0].toTensor().numel();
  return any_outside(args[1].toTensor(), -numel, numel);
}

// _embedding_bag(weight, indices, offsets, ...) and _embedding_bag_forward_only: the indices
// and the offsets are read.
void embedding_bag_indices_and_offsets(OpArguments args, Visit visit) {
  argument<1>(args, visit);
  argument<2>(args, visit);
}

// Each index is a row of weight; the offsets start at 0, never decrease and end within the
// indices.
bool embedding_bag_out_of_range(OpArguments args) {
  if (args.size() < 3 || !is_defined_tensor(args[0]) || !is_defined_tensor(args[1]) ||
      !is_defined_tensor(args[2])) {
    return true;
  }
  const at::Tensor& indices = args[1].toTensor();
  if (any_outside(indices, 0, size_along(args[0].toTensor(), 0))) return true;
  const at::Tensor& offsets = args[2].toTensor();
  if (!offsets.is_cpu() || !c10::isIntegralType(offsets.scalar_type(), /*includeBool=*/false)) {
    return false;  // CUDA (not checked), or a type the op rejects by metadata
  }
  const at::Tensor values = as_int64(offsets);
  const std::int64_t* data = values.const_data_ptr<std::int64_t>();
  const std::int64_t n = values.numel();
  if (n > 0 && (data[0] != 0 || data[n - 1] > indices.numel())) return true;
  for (std::int64_t i = 1; i < n; ++i) {
    if (data[i] < data[i - 1]) return true;
  }
  return false;
}

// max_unpool2d(self, indices, output_size) and max_unpool3d(self, indices, output_size, ...):
// each index is a position in one output plane (volume) of prod(output_size) elements.
bool unpool_index_out_of_range(OpArguments args) {
  if (args.size() < 3 || !is_defined_tensor(args[1]) || !args[2].isIntList()) return true;
  std::int64_t plane = 1;
  for (const std::int64_t size : args[2].toIntList()) plane *= size;
  return any_outside(args[1].toTensor(), 0, plane);
}

// nll_loss(2d)_forward(self, target, weight, reduction, ignore_index) and the backward's
// (grad_output, self, target, weight, reduction, ignore_index, total_weight): a target is a
// class of self or the ignored index.
template <std::size_t Self>
bool target_out_of_range(OpArguments args) {
  constexpr std::size_t kTarget = Self + 1;
  constexpr std::size_t kIgnoreIndex = Self + 4;
  if (args.size() <= kIgnoreIndex || !is_defined_tensor(args[Self]) ||
      !is_defined_tensor(args[kTarget]) || !args[kIgnoreIndex].isInt()) {
    return true;
  }
  const at::Tensor& self = args[Self].toTensor();
  const std::int64_t classes = self.dim() <= 1 ? self.numel() : self.size(1);
  return any_outside(args[kTarget].toTensor(), 0, classes, args[kIgnoreIndex].toInt());
}

// The margin losses, (self, target, ...) and their backwards (grad_output, self, target,
// ...): every target value is a class of self, or at least `Lowest`:
// - multi_margin_loss: a class (Lowest 0);
// - multilabel_margin_loss_forward/backward: a class or -1, which ends a row's labels (the
//   kernel checks the whole target, also past a row's first -1).
template <std::size_t Self, std::int64_t Lowest>
bool margin_target_out_of_range(OpArguments args) {
  if (args.size() <= Self + 1 || !is_defined_tensor(args[Self]) ||
      !is_defined_tensor(args[Self + 1])) {
    return true;
  }
  const at::Tensor& self = args[Self].toTensor();
  const std::int64_t classes = self.dim() <= 1 ? self.numel() : self.size(1);
  return any_outside(args[Self + 1].toTensor(), Lowest, classes);
}

bool is_integral(const c10::IValue& value);

// The divisor of an integer division (a float division raises on no value, and its divisor
// must not be waited for: `x / x.sum()` would lose its overlap).
void integer_divisor(OpArguments args, Visit visit) {
  if (args.size() < 2 || !is_integral(args[0]) || !is_integral(args[1])) return;
  for_each_tensor_in(args[1], visit);
}

// div's divisor, when it rounds (true division of integers gives floats).
void rounding_divisor(OpArguments args, Visit visit) {
  if (args.size() < 3 || !args[2].isString()) return;
  integer_divisor(args, visit);
}

bool is_integral(const c10::IValue& value) {
  if (value.isTensor()) return c10::isIntegralType(value.toTensor().scalar_type(), true);
  return value.isInt() || value.isBool() ||
         (value.isScalar() && value.toScalar().isIntegral(/*includeBool=*/true));
}

bool has_zero(const c10::IValue& value) {
  if (value.isTensor()) {
    const at::Tensor& tensor = value.toTensor();
    if (!tensor.is_cpu()) return false;
    const at::Tensor values = as_int64(tensor);
    const std::int64_t* data = values.const_data_ptr<std::int64_t>();
    for (std::int64_t i = 0, n = values.numel(); i < n; ++i) {
      if (data[i] == 0) return true;
    }
    return false;
  }
  if (value.isInt()) return value.toInt() == 0;
  if (value.isBool()) return !value.toBool();
  return value.isScalar() && value.toScalar().isIntegral(true) && value.toScalar().toLong() == 0;
}

// floor_divide, remainder, fmod (self, other): integers divided by an integer zero.
bool integer_division_by_zero(OpArguments args) {
  if (args.size() < 2) return true;
  return is_integral(args[0]) && is_integral(args[1]) && has_zero(args[1]);
}

// div(self, other, rounding_mode): only a rounding division of integers raises.
bool rounding_division_by_zero(OpArguments args) {
  if (args.size() < 3 || !args[2].isString()) return false;  // true division: no integers
  return integer_division_by_zero(args);
}

// True when some value of the CPU tensor `tensor`, as a double, is not `fine`.
template <class Fine>
bool any_value_not(const at::Tensor& tensor, Fine fine) {
  if (!tensor.is_cpu()) return false;
  const at::Tensor values = as_double(tensor);
  const double* data = values.const_data_ptr<double>();
  for (std::int64_t i = 0, n = values.numel(); i < n; ++i) {
    if (!fine(data[i])) return true;
  }
  return false;
}

// Any value outside [0, 1], NaN included.
bool outside_unit_interval(const at::Tensor& tensor) {
  return any_value_not(tensor, [](double v) { return v >= 0.0 && v <= 1.0; });
}

// Any value below zero, NaN included.
bool any_negative_or_nan(const at::Tensor& tensor) {
  return any_value_not(tensor, [](double v) { return v >= 0.0; });
}

// normal(mean, std): a standard deviation below zero (a tensor or a float).
bool negative_deviation(OpArguments args) {
  if (args.size() < 2) return true;
  if (args[1].isDouble()) return !(args[1].toDouble() >= 0.0);
  return is_defined_tensor(args[1]) && any_negative_or_nan(args[1].toTensor());
}

// poisson(rates): a rate below zero.
bool negative_rate(OpArguments args) {
  if (args.empty() || !is_defined_tensor(args[0])) return true;
  return any_negative_or_nan(args[0].toTensor());
}

// bernoulli with a probability tensor (or float p).
bool probability_out_of_range(OpArguments args) {
  if (args.size() > 1 && args[1].isDouble()) {
    const double p = args[1].toDouble();
    return !(p >= 0.0 && p <= 1.0);
  }
  const std::size_t position = args.size() > 1 && args[1].isTensor() ? 1 : 0;
  if (args.size() <= position || !is_defined_tensor(args[position])) return true;
  return outside_unit_interval(args[position].toTensor());
}

// histc(self, bins, min, max): the range must be finite; with min == max it is self's own
// minimum and maximum (a NaN or an infinity among the values raises).
bool histc_range_not_finite(OpArguments args) {
  if (args.size() < 4 || !is_defined_tensor(args[0])) return true;
  const auto is_number = [](const c10::IValue& value) { return value.isDouble() || value.isInt(); };
  if (!is_number(args[2]) || !is_number(args[3])) return true;
  const double low = args[2].toScalar().toDouble();
  const double high = args[3].toScalar().toDouble();
  if (low != high) return !std::isfinite(low) || !std::isfinite(high);
  const at::Tensor& self = args[0].toTensor();
  if (!self.is_cpu() || !c10::isFloatingType(self.scalar_type())) return false;
  const at::Tensor values = as_double(self);
  const double* data = values.const_data_ptr<double>();
  for (std::int64_t i = 0, n = values.numel(); i < n; ++i) {
    if (!std::isfinite(data[i])) return true;
  }
  return false;
}

// masked_scatter(_)(self, mask, source): the mask selects at most as many elements as source
// has. A mask that broadcasts to self is not counted here: it may raise.
bool mask_selects_more_than_source(OpArguments args) {
  if (args.size() < 3 || !is_defined_tensor(args[0]) || !is_defined_tensor(args[1]) ||
      !is_defined_tensor(args[2])) {
    return true;
  }
  const at::Tensor& mask = args[1].toTensor();
  if (!mask.is_cpu()) return false;
  if (!is_mask(mask) || mask.sizes() != args[0].toTensor().sizes()) return true;
  const at::Tensor values = as_int64(mask);
  const std::int64_t* data = values.const_data_ptr<std::int64_t>();
  std::int64_t selected = 0;
  for (std::int64_t i = 0, n = values.numel(); i < n; ++i) selected += data[i] != 0;
  return selected > args[2].toTensor().numel();
}

// searchsorted(sorted_sequence, self, *, out_int32, right, side, sorter): a sorter holds
// positions in the innermost dimension of the sequence.
bool sorter_out_of_range(OpArguments args) {
  if (args.size() < 6 || !is_defined_tensor(args[0])) return true;
  if (!is_defined_tensor(args[5])) return false;  // no sorter
  return any_outside(args[5].toTensor(), 0, size_along(args[0].toTensor(), -1));
}

// binary_cross_entropy(self, target, ...): the input must be probabilities.
bool input_not_probabilities(OpArguments args) {
  if (args.empty() || !is_defined_tensor(args[0])) return true;
  return outside_unit_interval(args[0].toTensor());
}

// multinomial(self, num_samples, replacement, generator): every row finite, non-negative,
// with some mass, and without replacement at least num_samples categories with mass.
bool invalid_distribution(OpArguments args) {
  if (args.size() < 3 || !is_defined_tensor(args[0]) || !args[1].isInt() || !args[2].isBool()) {
    return true;
  }
  const at::Tensor& probabilities = args[0].toTensor();
  if (!probabilities.is_cpu()) return false;
  if (probabilities.dim() < 1 || probabilities.numel() == 0) return true;
  const at::Tensor values = as_double(probabilities);
  const double* data = values.const_data_ptr<double>();
  const std::int64_t categories = values.size(-1);
  const std::int64_t samples = args[1].toInt();
  const bool replacement = args[2].toBool();
  for (std::int64_t row = 0; row < values.numel() / categories; ++row) {
    std::int64_t with_mass = 0;
    for (std::int64_t i = 0; i < categories; ++i) {
      const double p = data[row * categories + i];
      if (!std::isfinite(p) || p < 0.0) return true;
      with_mass += p > 0.0;
    }
    if (with_mass == 0 || (!replacement && with_mass < samples)) return true;
  }
  return false;
}

const std::unordered_map<std::string_view, ValueCheck>& checks() {
  static const ValueCheck kIndexAlongDim{argument<2>, index_along_dim_out_of_range};
  static const ValueCheck kIntegerDivision{integer_divisor, integer_division_by_zero};
  static const ValueCheck kAdvancedIndex{integer_indices, advanced_index_out_of_range};
  static const ValueCheck kFlatIndex{argument<1>, flat_index_out_of_range};
  static const std::unordered_map<std::string_view, ValueCheck> table = {
      {"aten::embedding", {argument<1>, embedding_index_out_of_range}},
      {"aten::embedding_dense_backward", {argument<1>, embedding_backward_index_out_of_range}},
      {"aten::embedding_renorm_", {argument<1>, renorm_index_out_of_range}},
      {"aten::index_select", kIndexAlongDim},
      {"aten::gather", kIndexAlongDim},
      {"aten::scatter", kIndexAlongDim},
      {"aten::scatter_", kIndexAlongDim},
      {"aten::scatter_add", kIndexAlongDim},
      {"aten::scatter_add_", kIndexAlongDim},
      {"aten::scatter_reduce", kIndexAlongDim},
      {"aten::scatter_reduce_", kIndexAlongDim},
      {"aten::index_add", kIndexAlongDim},
      {"aten::index_add_", kIndexAlongDim},
      {"aten::index_copy", kIndexAlongDim},
      {"aten::index_copy_", kIndexAlongDim},
      {"aten::index_fill", kIndexAlongDim},
      {"aten::index_fill_", kIndexAlongDim},
      {"aten::index_reduce", kIndexAlongDim},
      {"aten::index_reduce_", kIndexAlongDim},
      {"aten::index", kAdvancedIndex},
      {"aten::index_put", kAdvancedIndex},
      {"aten::index_put_", kAdvancedIndex},
      {"aten::_index_put_impl_", kAdvancedIndex},
      {"aten::take", kFlatIndex},
      {"aten::put", kFlatIndex},
      {"aten::put_", kFlatIndex},
      {"aten::_embedding_bag", {embedding_bag_indices_and_offsets, embedding_bag_out_of_range}},
      {"aten::_embedding_bag_forward_only",
       {embedding_bag_indices_and_offsets, embedding_bag_out_of_range}},
      {"aten::max_unpool2d", {argument<1>, unpool_index_out_of_range}},
      {"aten::max_unpool3d", {argument<1>, unpool_index_out_of_range}},
      {"aten::nll_loss_forward", {argument<1>, target_out_of_range<0>}},
      {"aten::nll_loss2d_forward", {argument<1>, target_out_of_range<0>}},
      {"aten::nll_loss_backward", {argument<2>, target_out_of_range<1>}},
      {"aten::nll_loss2d_backward", {argument<2>, target_out_of_range<1>}},
      {"aten::multi_margin_loss", {argument<1>, margin_target_out_of_range<0, 0>}},
      {"aten::multi_margin_loss_backward", {argument<2>, margin_target_out_of_range<1, 0>}},
      {"aten::multilabel_margin_loss_forward", {argument<1>, margin_target_out_of_range<0, -1>}},
      {"aten::multilabel_margin_loss_backward", {argument<2>, margin_target_out_of_range<1, -1>}},
      {"aten::floor_divide", kIntegerDivision},
      {"aten::floor_divide_", kIntegerDivision},
      {"aten::remainder", kIntegerDivision},
      {"aten::remainder_", kIntegerDivision},
      {"aten::fmod", kIntegerDivision},
      {"aten::fmod_", kIntegerDivision},
      {"aten::div", {rounding_divisor, rounding_division_by_zero}},
      {"aten::div_", {rounding_divisor, rounding_division_by_zero}},
      {"aten::bernoulli", {bernoulli_probabilities, probability_out_of_range}},
      {"aten::bernoulli_", {bernoulli_probabilities, probability_out_of_range}},
      {"aten::binary_cross_entropy", {argument<0>, input_not_probabilities}},
      {"aten::histc", {argument<0>, histc_range_not_finite}},
      {"aten::masked_scatter", {argument<1>, mask_selects_more_than_source}},
      {"aten::masked_scatter_", {argument<1>, mask_selects_more_than_source}},
      {"aten::searchsorted", {argument<5>, sorter_out_of_range}},
      {"aten::multinomial", {argument<0>, invalid_distribution}},
      {"aten::normal", {argument<1>, negative_deviation}},
      {"aten::poisson", {argument<0>, negative_rate}},
  };
  return table;
}

}  // namespace

const ValueCheck* value_check(std::string_view name) {
  auto found = checks().find(name);
  return found == checks().end() ? nullptr : &found->second;
}

bool is_check_only_op(std::string_view name) {
  static const std::unordered_set<std::string_view> ops = {
      "aten::_linalg_check_errors", "aten::_assert_async", "aten::_functional_assert_async",
      "aten::_assert_scalar", "aten::_functional_assert_scalar"};
  return ops.count(name) > 0;
}

}  // namespace terra::coexec
