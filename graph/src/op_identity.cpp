#include "terra/graph/op_identity.h"

#include <algorithm>
#include <utility>

namespace terra::graph {

OperatorName::OperatorName(std::string name, std::string overload, std::int64_t key)
    : name_(std::move(name)), overload_(std::move(overload)), key_(key) {
  hash_ = hash_combine(hash_string(name_), hash_string(overload_));
}

std::string OperatorName::qualified() const {
  return overload_.empty() ? name_ : name_ + "." + overload_;
}

std::string OperatorName::short_name() const {
  std::size_t colons = name_.rfind("::");
  return colons == std::string::npos ? name_ : name_.substr(colons + 2);
}

OpIdentity::OpIdentity(OperatorName op, std::vector<Arg> args, std::vector<TensorInput> inputs,
                       std::uint64_t context)
    : op_(std::move(op)), args_(std::move(args)), inputs_(std::move(inputs)), context_(context) {
  rehash();
}

void OpIdentity::rehash() {
  hash_ = compute_hash();
  has_scalar_feeds_ =
      std::any_of(args_.begin(), args_.end(), [](const Arg& a) { return a.is<ScalarFeed>(); });
}

HashValue OpIdentity::compute_hash() const {
  HashValue h = hash_combine(op_.hash(), context_);
  h = hash_combine(h, args_.size());
  for (const Arg& arg : args_) h = hash_combine(h, arg.match_hash());
  h = hash_combine(h, inputs_.size());
  for (const TensorInput& input : inputs_) {
    h = hash_combine(h, hash_input_ref(input.ref));
    h = hash_combine(h, input.meta.hash());
  }
  return h;
}

bool OpIdentity::accepts(const OpIdentity& record) const {
  if (hash_ != record.hash_ || context_ != record.context_ || op_ != record.op_ ||
      args_.size() != record.args_.size() || inputs_ != record.inputs_) {
    return false;
  }
  if (!has_scalar_feeds_) return args_ == record.args_;
  for (std::size_t i = 0; i < args_.size(); ++i) {
    if (!record.args_[i].matches(args_[i])) return false;
  }
  return true;
}

bool OpIdentity::overlaps(const OpIdentity& other) const {
  if (hash_ != other.hash_ || context_ != other.context_ || op_ != other.op_ ||
      args_.size() != other.args_.size() || inputs_ != other.inputs_) {
    return false;
  }
  for (std::size_t i = 0; i < args_.size(); ++i) {
    const Arg& a = args_[i];
    const Arg& b = other.args_[i];
    bool ok = a == b ||
              (a.is<ScalarFeed>() && (b.may_generalise() || b.is<ScalarFeed>()) &&
               a.scalar_kind() == b.scalar_kind()) ||
              (b.is<ScalarFeed>() && a.may_generalise() && a.scalar_kind() == b.scalar_kind());
    if (!ok) return false;
  }
  return true;
}

IdentityMatch OpIdentity::compare(const OpIdentity& record) const {
  // The hash leaves int/double values out, so unequal hashes differ in something else.
  if (hash_ != record.hash_ || context_ != record.context_ || op_ != record.op_ ||
      args_.size() != record.args_.size() || inputs_ != record.inputs_) {
    return IdentityMatch::kDifferent;
  }
  IdentityMatch result = IdentityMatch::kEqual;
  for (std::size_t i = 0; i < args_.size(); ++i) {
    const Arg& pattern = args_[i];
    const Arg& value = record.args_[i];
    if (pattern == value) continue;
    if (pattern.is<ScalarFeed>() && value.matches(pattern)) {
      if (result == IdentityMatch::kEqual) result = IdentityMatch::kMatches;
    } else if (pattern.may_generalise() && value.may_generalise() &&
               pattern.scalar_kind() == value.scalar_kind()) {
      result = IdentityMatch::kScalarsDiffer;
    } else {
      return IdentityMatch::kDifferent;
    }
  }
  return result;
}

std::string OpIdentity::tensor_slot_problem() const {
  std::vector<int> uses(inputs_.size(), 0);
  std::string problem;
  auto use = [&](std::int64_t index) {
    if (index < 0 || static_cast<std::size_t>(index) >= uses.size()) {
      if (problem.empty()) problem = "tensor arg refers to input " + std::to_string(index);
      return;
    }
    ++uses[static_cast<std::size_t>(index)];
  };
  for (const Arg& arg : args_) {
    if (arg.is<TensorArg>()) use(arg.as<TensorArg>().input);
    if (arg.is<TensorListArg>()) {
      for (std::int32_t index : arg.as<TensorListArg>().inputs) {
        if (index != TensorListArg::kNoTensor) use(index);
      }
    }
  }
  if (!problem.empty()) return problem;
  for (std::size_t i = 0; i < uses.size(); ++i) {
    if (uses[i] != 1) return "input " + std::to_string(i) + " is not named by exactly one arg";
  }
  return "";
}

void OpIdentity::generalise_arg(std::size_t index) {
  // An int/double and a ScalarFeed of its kind hash alike, so hash_ stays valid.
  args_[index] = ScalarFeed{args_[index].scalar_kind()};
  has_scalar_feeds_ = true;
}

}  // namespace terra::graph
