#include "terra/graph/input_ref.h"

#include <type_traits>
#include <variant>

namespace terra::graph {

HashValue hash_input_ref(const InputRef& ref) {
  HashValue h = hash_combine(0x1f, ref.index());
  return std::visit(
      [h](const auto& r) -> HashValue {
        using T = std::decay_t<decltype(r)>;
        if constexpr (std::is_same_v<T, NodeOutput>) {
          return hash_combine(hash_combine(h, r.step), r.output);
        } else if constexpr (std::is_same_v<T, Feed>) {
          return hash_combine(h, static_cast<HashValue>(r.index));
        } else {
          return hash_combine(h, static_cast<HashValue>(r.id));
        }
      },
      ref);
}

}  // namespace terra::graph
