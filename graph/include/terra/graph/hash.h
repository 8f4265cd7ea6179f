// Small, deterministic 64-bit hashing used by the IR's value types.
//
// std::hash is not specified to be stable across runs or libraries; graph hashes appear in
// JSON and may key on-disk caches, so the IR uses its own mixing function.
#pragma once

#include <cstdint>
#include <string_view>

namespace terra::graph {

using HashValue = std::uint64_t;

// Mixes `value` into `seed` and returns the combined hash (order-sensitive).
inline HashValue hash_combine(HashValue seed, HashValue value) noexcept {
  // splitmix64 finaliser of (seed ^ value): cheap and well distributed.
  HashValue x = seed ^ (value + 0x9e3779b97f4a7c15ULL + (seed << 6) + (seed >> 2));
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// FNV-1a of the bytes of `text`: stable across platforms and runs.
inline HashValue hash_string(std::string_view text) noexcept {
  HashValue h = 0xcbf29ce484222325ULL;
  for (unsigned char c : text) {
    h = (h ^ c) * 0x100000001b3ULL;
  }
  return h;
}

}  // namespace terra::graph
