// CallPattern: compiling a node's identity for the hot path (see call_pattern.h).
#include "call_pattern.h"

#include <unordered_map>

namespace terra::coexec {
namespace {

std::optional<at::ScalarType> scalar_type_named(const std::string& name) {
  static const std::unordered_map<std::string, at::ScalarType> types = [] {
    std::unordered_map<std::string, at::ScalarType> by_name;
    for (at::ScalarType type :
         {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16, at::kLong, at::kInt, at::kShort,
          at::kChar, at::kByte, at::kBool, at::kComplexFloat, at::kComplexDouble}) {
      by_name.emplace(dtype_name(type), type);
    }
    return by_name;
  }();
  auto found = types.find(name);
  if (found == types.end()) return std::nullopt;
  return found->second;
}

std::uint64_t bits_of(double value) {
  std::uint64_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

}  // namespace

bool is_concrete_int(const c10::IValue& value) {
  return value.isInt() || (value.isSymInt() && !value.toSymInt().is_heap_allocated());
}

std::int64_t concrete_int(const c10::IValue& value) {
  return value.isInt() ? value.toInt() : value.toSymInt().as_int_unchecked();
}

bool is_concrete_int_list(const c10::IValue& value) {
  if (value.isIntList()) return true;
  if (!value.isList()) return false;
  const auto list = value.toListRef();
  if (list.empty()) return false;
  for (const c10::IValue& element : list) {
    if (element.isInt()) continue;
    if (element.isSymInt() && !element.toSymInt().is_heap_allocated()) continue;
    return false;
  }
  return true;
}

CallPattern::CallPattern(const graph::OpIdentity& identity)
    : op_key_(identity.op().key()), context_(identity.context()) {
  if (op_key_ == graph::OperatorName::kNoKey) decidable_ = false;
  for (const graph::TensorInput& input : identity.inputs()) {
    InputPattern pattern;
    pattern.ref = input.ref;
    pattern.sizes = input.meta.sizes.vec();
    pattern.strides = input.meta.strides.vec();
    pattern.requires_grad = input.meta.requires_grad;
    const auto dtype = scalar_type_named(input.meta.dtype);
    if (dtype) {
      pattern.dtype = c10::scalarTypeToTypeMeta(*dtype);
    } else {
      decidable_ = false;
    }
    try {
      pattern.device = c10::Device(input.meta.device);
    } catch (const c10::Error&) {
      decidable_ = false;
    }
    if (pattern.device.is_cuda() && !cuda_input_) cuda_input_ = pattern.device;
    inputs_.push_back(std::move(pattern));
  }
  slots_.resize(inputs_.size());
  const auto& args = identity.args();
  for (std::size_t i = 0; i < args.size(); ++i) {
    const graph::Arg& arg = args[i];
    ArgPattern pattern;
    if (arg.is<graph::NoneArg>()) {
      pattern.kind = ArgKind::kNone;
    } else if (arg.is<graph::TensorArg>()) {
      pattern.kind = ArgKind::kTensor;
      pattern.input = arg.as<graph::TensorArg>().input;
      if (pattern.input < slots_.size()) {
        slots_[pattern.input] = {static_cast<std::uint32_t>(i), -1};
      } else {
        decidable_ = false;
      }
    } else if (arg.is<graph::TensorListArg>()) {
      pattern.kind = ArgKind::kTensorList;
      pattern.list = arg.as<graph::TensorListArg>().inputs;
      for (std::size_t j = 0; j < pattern.list.size(); ++j) {
        const std::int32_t input = pattern.list[j];
        if (input == graph::TensorListArg::kNoTensor) continue;
        if (input >= 0 && static_cast<std::size_t>(input) < slots_.size()) {
          slots_[input] = {static_cast<std::uint32_t>(i), static_cast<std::int32_t>(j)};
        } else {
          decidable_ = false;
        }
      }
    } else if (arg.is<bool>()) {
      pattern.kind = ArgKind::kBool;
      pattern.bool_value = arg.as<bool>();
    } else if (arg.is<std::int64_t>()) {
      pattern.kind = ArgKind::kInt;
      pattern.int_value = arg.as<std::int64_t>();
    } else if (arg.is<double>()) {
      pattern.kind = ArgKind::kDouble;
      pattern.double_bits = bits_of(arg.as<double>());
    } else if (arg.is<graph::IntList>()) {
      pattern.kind = ArgKind::kIntList;
      pattern.ints = arg.as<graph::IntList>();
    } else if (arg.is<graph::DoubleList>()) {
      pattern.kind = ArgKind::kDoubleList;
      for (double d : arg.as<graph::DoubleList>()) pattern.doubles.push_back(bits_of(d));
    } else if (arg.is<std::string>()) {
      pattern.kind = ArgKind::kString;
      pattern.text = arg.as<std::string>();
    } else if (arg.is<graph::ScalarFeed>()) {
      pattern.kind = arg.as<graph::ScalarFeed>().kind == graph::ScalarKind::kInt
                         ? ArgKind::kIntFeed
                         : ArgKind::kDoubleFeed;
    } else {
      pattern.kind = ArgKind::kUndecidable;  // OtherArg: compared by canonical text only
      decidable_ = false;
    }
    args_.push_back(std::move(pattern));
  }
}

}  // namespace terra::coexec
