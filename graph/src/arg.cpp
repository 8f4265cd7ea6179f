#include "terra/graph/arg.h"

#include <cstring>
#include <type_traits>

namespace terra::graph {
namespace {

std::uint64_t bits_of(double value) {
  std::uint64_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

bool same_bits(const DoubleList& a, const DoubleList& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (bits_of(a[i]) != bits_of(b[i])) return false;
  }
  return true;
}

// Tag mixed into the hash of every int/double scalar or ScalarFeed, per kind.
HashValue scalar_tag(ScalarKind kind) { return kind == ScalarKind::kInt ? 0x51 : 0x52; }

}  // namespace

ScalarKind Arg::scalar_kind() const {
  if (is<ScalarFeed>()) return as<ScalarFeed>().kind;
  return is<std::int64_t>() ? ScalarKind::kInt : ScalarKind::kDouble;
}

bool Arg::matches(const Arg& pattern) const {
  if (pattern.is<ScalarFeed>()) {
    return may_generalise() && scalar_kind() == pattern.as<ScalarFeed>().kind;
  }
  return *this == pattern;
}

bool operator==(const Arg& a, const Arg& b) {
  if (a.value_.index() != b.value_.index()) return false;
  return std::visit(
      [&b](const auto& x) -> bool {
        using T = std::decay_t<decltype(x)>;
        const T& y = std::get<T>(b.value_);
        if constexpr (std::is_same_v<T, double>) {
          return bits_of(x) == bits_of(y);
        } else if constexpr (std::is_same_v<T, DoubleList>) {
          return same_bits(x, y);
        } else {
          return x == y;
        }
      },
      a.value_);
}

HashValue Arg::match_hash() const {
  if (may_generalise() || is<ScalarFeed>()) return scalar_tag(scalar_kind());
  HashValue h = hash_combine(0xa5, value_.index());
  return std::visit(
      [h](const auto& x) -> HashValue {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, bool>) {
          return hash_combine(h, x ? 1 : 0);
        } else if constexpr (std::is_same_v<T, std::string>) {
          return hash_combine(h, hash_string(x));
        } else if constexpr (std::is_same_v<T, IntList>) {
          HashValue r = hash_combine(h, x.size());
          for (std::int64_t v : x) r = hash_combine(r, static_cast<HashValue>(v));
          return r;
        } else if constexpr (std::is_same_v<T, DoubleList>) {
          HashValue r = hash_combine(h, x.size());
          for (double v : x) r = hash_combine(r, bits_of(v));
          return r;
        } else if constexpr (std::is_same_v<T, OtherArg>) {
          return hash_combine(h, hash_string(x.canonical));
        } else if constexpr (std::is_same_v<T, TensorArg>) {
          return hash_combine(h, x.input);
        } else if constexpr (std::is_same_v<T, TensorListArg>) {
          HashValue r = hash_combine(h, x.inputs.size());
          for (std::int32_t v : x.inputs) r = hash_combine(r, static_cast<HashValue>(v));
          return r;
        } else {
          return h;  // NoneArg (scalars and ScalarFeed handled above)
        }
      },
      value_);
}

}  // namespace terra::graph
