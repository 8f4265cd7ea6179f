// Small, deterministic 64-bit hashing used by the IR's value types.
//
// std::hash is not specified to be stable across runs or libraries; graph hashes may key
// on-disk caches, so the IR uses its own mixing functions.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

namespace terra::graph {

using HashValue = std::uint64_t;

// Mixes `value` into `seed` and returns the combined hash (order-sensitive). One multiply:
// identity hashes only pre-filter comparisons (equal hashes are always confirmed by a full
// compare), so speed matters more than avalanche quality.
inline HashValue hash_combine(HashValue seed, HashValue value) noexcept {
  HashValue x = (seed ^ value) * 0x9e3779b97f4a7c15ULL;
  return x ^ (x >> 32);
}

// Hash of the bytes of `text`, read eight at a time: stable across runs and platforms
// of one endianness.
inline HashValue hash_string(std::string_view text) noexcept {
  HashValue h = hash_combine(0xcbf29ce484222325ULL, text.size());
  std::size_t i = 0;
  for (; i + 8 <= text.size(); i += 8) {
    HashValue word;
    std::memcpy(&word, text.data() + i, 8);
    h = hash_combine(h, word);
  }
  if (i < text.size()) {
    HashValue word = 0;
    std::memcpy(&word, text.data() + i, text.size() - i);
    h = hash_combine(h, word);
  }
  return h;
}

}  // namespace terra::graph
