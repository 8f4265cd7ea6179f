// TensorMeta: the metadata of a tensor as the IR sees it (no storage, no runtime state).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "terra/graph/dims.h"
#include "terra/graph/hash.h"

namespace terra::graph {

struct TensorMeta {
  Dims sizes;
  Dims strides;
  std::int64_t storage_offset = 0;
  std::string dtype;   // torch's name without the prefix: "float32", "int64", "bool"
  std::string device;  // "cpu", "cuda:0"
  bool requires_grad = false;

  // Contiguous row-major metadata for `sizes` (the common case in tests and feeds).
  static TensorMeta contiguous(Dims sizes, std::string dtype = "float32",
                               std::string device = "cpu", bool requires_grad = false);

  // Number of elements (product of sizes; 1 for a 0-dim tensor).
  std::int64_t numel() const;

  // Deterministic hash over every field; equal metas hash equal.
  HashValue hash() const;

  friend bool operator==(const TensorMeta& a, const TensorMeta& b) {
    return a.storage_offset == b.storage_offset && a.requires_grad == b.requires_grad &&
           a.sizes == b.sizes && a.strides == b.strides && a.dtype == b.dtype &&
           a.device == b.device;
  }
  friend bool operator!=(const TensorMeta& a, const TensorMeta& b) { return !(a == b); }
};

// Hash functor so TensorMeta can key unordered containers.
struct TensorMetaHash {
  std::size_t operator()(const TensorMeta& meta) const { return meta.hash(); }
};

}  // namespace terra::graph
