// Arg: one argument of an operator call in schema order: a non-tensor value, a generalised
// scalar (ScalarFeed), or the position of a tensor input.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "terra/graph/hash.h"

namespace terra::graph {

// A schema argument that is None (an absent optional).
struct NoneArg {
  friend bool operator==(NoneArg, NoneArg) { return true; }
};

// What kind of Python number a ScalarFeed stands for.
enum class ScalarKind : std::uint8_t { kInt, kDouble };

// A scalar argument that varied across iterations without changing any output's metadata:
// its value is supplied each iteration (a "scalar feed"), and matching ignores it.
// `kind` is the kind of the values seen; only values of that kind match it.
struct ScalarFeed {
  ScalarKind kind = ScalarKind::kDouble;
  friend bool operator==(ScalarFeed a, ScalarFeed b) { return a.kind == b.kind; }
};

// An argument kind the engine does not classify (memory_format, generator, layout, complex
// scalar...): compared by its canonical text, e.g. "memory_format:contiguous".
struct OtherArg {
  std::string canonical;
  friend bool operator==(const OtherArg& a, const OtherArg& b) {
    return a.canonical == b.canonical;
  }
};

// A tensor argument: index into the op's inputs (OpIdentity::inputs).
struct TensorArg {
  std::uint32_t input = 0;
  friend bool operator==(TensorArg a, TensorArg b) { return a.input == b.input; }
};

// A tensor-list argument (cat, stack, index with Tensor?[]): input index per element,
// kNoTensor for a None element of an optional-tensor list.
struct TensorListArg {
  static constexpr std::int32_t kNoTensor = -1;
  std::vector<std::int32_t> inputs;
  friend bool operator==(const TensorListArg& a, const TensorListArg& b) {
    return a.inputs == b.inputs;
  }
};

using IntList = std::vector<std::int64_t>;
using DoubleList = std::vector<double>;

class Arg {
 public:
  // Order of alternatives is part of the hash; append only.
  using Value = std::variant<NoneArg, bool, std::int64_t, double, std::string, IntList, DoubleList,
                             ScalarFeed, OtherArg, TensorArg, TensorListArg>;

  Arg() = default;  // None
  Arg(NoneArg v) : value_(v) {}
  Arg(bool v) : value_(v) {}
  Arg(std::int64_t v) : value_(v) {}
  Arg(int v) : value_(static_cast<std::int64_t>(v)) {}
  Arg(double v) : value_(v) {}
  Arg(std::string v) : value_(std::move(v)) {}
  Arg(const char* v) : value_(std::string(v)) {}
  Arg(IntList v) : value_(std::move(v)) {}
  Arg(DoubleList v) : value_(std::move(v)) {}
  Arg(ScalarFeed v) : value_(v) {}
  Arg(OtherArg v) : value_(std::move(v)) {}
  Arg(TensorArg v) : value_(v) {}
  Arg(TensorListArg v) : value_(std::move(v)) {}

  const Value& value() const { return value_; }
  template <typename T>
  bool is() const {
    return std::holds_alternative<T>(value_);
  }
  template <typename T>
  const T& as() const {
    return std::get<T>(value_);
  }

  // True for an int or double scalar: the kinds that may become a ScalarFeed.
  bool may_generalise() const { return is<std::int64_t>() || is<double>(); }
  // The ScalarKind of an int/double scalar or of a ScalarFeed; precondition: one of those.
  ScalarKind scalar_kind() const;
  // True when this (a concrete value) is accepted where `pattern` stands: equal, or
  // `pattern` is a ScalarFeed of this scalar's kind.
  bool matches(const Arg& pattern) const;

  // Exact, bitwise equality: doubles compare by bits (0.0 != -0.0, NaN == same NaN), since
  // both change results. A ScalarFeed equals only a ScalarFeed of the same kind.
  friend bool operator==(const Arg& a, const Arg& b);
  friend bool operator!=(const Arg& a, const Arg& b) { return !(a == b); }

  // Hash consistent with matches(): an int/double scalar and a ScalarFeed of the same kind
  // hash alike (the value is left out), so a generalised node and a record that matches it
  // have equal hashes. Every other alternative hashes its value.
  HashValue match_hash() const;

 private:
  Value value_;
};

}  // namespace terra::graph
