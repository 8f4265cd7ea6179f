// CallPattern: a node's identity compiled for the co-execution hot path.
//
// Matching a boxed call against a node through the IR means building a graph::OpIdentity for
// the call (argument vectors, per-input TensorMeta with dtype and device names, a hash) and
// comparing it: most of the Python-side cost of a co-executed op. A CallPattern holds the same
// identity in the terms of the stack (ScalarType, Device, sizes as integers) and judges the
// stack in place, allocating nothing. It answers exactly what OpIdentity::accepts would, or
// declines: a pattern that holds something only the IR comparison handles (strings of other
// arguments, generators...) is not `decidable`, and any tensor co-execution cannot represent
// makes accepts() false, so that the caller goes the general way (build_call) for the verdict.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "op_table.h"
#include "terra/graph/op_identity.h"

namespace terra::coexec {

// Where the k-th tensor input of an identity sits among the op's stack arguments.
struct InputSlot {
  std::uint32_t argument = 0;
  std::int32_t element = -1;  // index into a tensor list; -1: the argument is the tensor
};

// One tensor input as identity compares it (storage offset left out, see identity_meta).
struct InputPattern {
  graph::InputRef ref;
  std::vector<std::int64_t> sizes, strides;
  caffe2::TypeMeta dtype;
  c10::Device device{c10::DeviceType::CPU};
  bool requires_grad = false;
};

enum class ArgKind : std::uint8_t {
  kNone,        // None, or an undefined tensor
  kTensor,      // input `input`
  kTensorList,  // inputs `list` (kNoTensor for a None element)
  kBool,
  kInt,
  kDouble,      // compared by bits
  kIntList,     // `ints`
  kDoubleList,  // `doubles`, by bits
  kString,
  kIntFeed,     // any int (a generalised scalar)
  kDoubleFeed,  // any double
  kUndecidable,
};

struct ArgPattern {
  ArgKind kind = ArgKind::kUndecidable;
  bool bool_value = false;
  std::int64_t int_value = 0;
  std::uint64_t double_bits = 0;
  std::uint32_t input = 0;
  std::vector<std::int32_t> list;
  std::vector<std::int64_t> ints;
  std::vector<std::uint64_t> doubles;
  std::string text;
};

class CallPattern {
 public:
  explicit CallPattern(const graph::OpIdentity& identity);

  // False when some argument can only be judged through the IR (accepts() then says false).
  bool decidable() const { return decidable_; }
  // Stack position of every tensor input, in identity order (also for undecidable patterns).
  const std::vector<InputSlot>& input_slots() const { return slots_; }
  // The device of the first CUDA input, if any (the stream a queued op runs on).
  const std::optional<c10::Device>& cuda_input() const { return cuda_input_; }

  // True when the identity of a call of operator `op_key` with engine context `context` and
  // stack arguments `args[0..n)` would be accepted by this pattern's identity. `ref_of(tensor)`
  // returns the tensor's InputRef exactly as the engine's input_ref does (side effects
  // included: both paths visit tensors in argument order, so external ids come out alike).
  template <class RefOf>
  bool accepts(std::int64_t op_key, std::uint64_t context, const c10::IValue* args, std::size_t n,
               RefOf&& ref_of) const;

 private:
  template <class RefOf>
  bool tensor_accepted(const at::Tensor& tensor, std::uint32_t input, RefOf& ref_of) const;

  std::int64_t op_key_ = graph::OperatorName::kNoKey;
  std::uint64_t context_ = 0;
  std::vector<ArgPattern> args_;
  std::vector<InputPattern> inputs_;
  std::vector<InputSlot> slots_;
  std::optional<c10::Device> cuda_input_;
  bool decidable_ = true;
};

// Tests on stack values shared with build_call (engine.cpp), so both classify alike.
// An int list, or a list of concrete SymInts (sizes arrive so); not empty unless IntList.
bool is_concrete_int_list(const c10::IValue& value);
// An int, or a SymInt with a concrete value.
bool is_concrete_int(const c10::IValue& value);
std::int64_t concrete_int(const c10::IValue& value);

// ---------------------------------------------------------------------------------------------

template <class RefOf>
bool CallPattern::tensor_accepted(const at::Tensor& tensor, std::uint32_t input,
                                  RefOf& ref_of) const {
  if (!tensor_supported(tensor)) return false;
  const InputPattern& want = inputs_[input];
  const c10::TensorImpl* impl = tensor.unsafeGetTensorImpl();
  if (impl->dtype() != want.dtype || impl->device() != want.device ||
      impl->requires_grad() != want.requires_grad || !impl->sizes().equals(want.sizes) ||
      !impl->strides().equals(want.strides)) {
    return false;
  }
  return ref_of(tensor) == want.ref;
}

template <class RefOf>
bool CallPattern::accepts(std::int64_t op_key, std::uint64_t context, const c10::IValue* args,
                          std::size_t n, RefOf&& ref_of) const {
  if (!decidable_ || op_key != op_key_ || context != context_ || n != args_.size()) {
    return false;
  }
  for (std::size_t i = 0; i < n; ++i) {
    const ArgPattern& want = args_[i];
    const c10::IValue& value = args[i];
    switch (want.kind) {
      case ArgKind::kNone:
        if (!value.isNone() && !(value.isTensor() && !value.toTensor().defined())) return false;
        break;
      case ArgKind::kTensor:
        if (!value.isTensor() || !value.toTensor().defined() ||
            !tensor_accepted(value.toTensor(), want.input, ref_of)) {
          return false;
        }
        break;
      case ArgKind::kTensorList: {
        if (is_concrete_int_list(value)) return false;
        if (!value.isTensorList() &&
            !(value.isList() && !value.isDoubleList() && !value.isBoolList())) {
          return false;
        }
        const auto elements = value.toListRef();
        if (elements.size() != want.list.size()) return false;
        for (std::size_t j = 0; j < elements.size(); ++j) {
          const c10::IValue& element = elements[j];
          const bool absent =
              element.isNone() || (element.isTensor() && !element.toTensor().defined());
          if (want.list[j] == graph::TensorListArg::kNoTensor) {
            if (!absent) return false;
          } else if (absent || !element.isTensor() ||
                     !tensor_accepted(element.toTensor(), static_cast<std::uint32_t>(want.list[j]),
                                      ref_of)) {
            return false;
          }
        }
        break;
      }
      case ArgKind::kBool:
        if (!value.isBool() || value.toBool() != want.bool_value) return false;
        break;
      case ArgKind::kInt:
        if (!is_concrete_int(value) || concrete_int(value) != want.int_value) return false;
        break;
      case ArgKind::kDouble: {
        if (!value.isDouble()) return false;
        const double d = value.toDouble();
        std::uint64_t bits;
        std::memcpy(&bits, &d, sizeof bits);
        if (bits != want.double_bits) return false;
        break;
      }
      case ArgKind::kIntList: {
        if (!is_concrete_int_list(value)) return false;
        if (value.isIntList()) {
          const auto list = value.toIntList();
          if (list.size() != want.ints.size()) return false;
          for (std::size_t j = 0; j < list.size(); ++j) {
            if (list.get(j) != want.ints[j]) return false;
          }
        } else {
          const auto list = value.toListRef();
          if (list.size() != want.ints.size()) return false;
          for (std::size_t j = 0; j < list.size(); ++j) {
            if (concrete_int(list[j]) != want.ints[j]) return false;
          }
        }
        break;
      }
      case ArgKind::kDoubleList: {
        if (is_concrete_int_list(value) || !value.isDoubleList()) return false;
        const auto list = value.toDoubleList();
        if (list.size() != want.doubles.size()) return false;
        for (std::size_t j = 0; j < list.size(); ++j) {
          const double d = list.get(j);
          std::uint64_t bits;
          std::memcpy(&bits, &d, sizeof bits);
          if (bits != want.doubles[j]) return false;
        }
        break;
      }
      case ArgKind::kString:
        if (!value.isString() || value.toStringRef() != want.text) return false;
        break;
      case ArgKind::kIntFeed:
        if (!is_concrete_int(value)) return false;
        break;
      case ArgKind::kDoubleFeed:
        if (!value.isDouble()) return false;
        break;
      case ArgKind::kUndecidable:
        return false;
    }
  }
  return true;
}

}  // namespace terra::coexec
