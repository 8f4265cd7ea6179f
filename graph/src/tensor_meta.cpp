#include "terra/graph/tensor_meta.h"

#include <utility>

namespace terra::graph {

TensorMeta TensorMeta::contiguous(Dims sizes, std::string dtype, std::string device,
                                  bool requires_grad) {
  TensorMeta meta;
  meta.strides.assign(sizes.size(), 1);
  for (std::size_t i = sizes.size(); i > 1; --i) {
    meta.strides[i - 2] = meta.strides[i - 1] * (sizes[i - 1] > 1 ? sizes[i - 1] : 1);
  }
  meta.sizes = std::move(sizes);
  meta.dtype = std::move(dtype);
  meta.device = std::move(device);
  meta.requires_grad = requires_grad;
  return meta;
}

std::int64_t TensorMeta::numel() const {
  std::int64_t n = 1;
  for (std::int64_t size : sizes) n *= size;
  return n;
}

HashValue TensorMeta::hash() const {
  HashValue h = hash_string(dtype);
  h = hash_combine(h, hash_string(device));
  h = hash_combine(h, static_cast<HashValue>(storage_offset));
  h = hash_combine(h, requires_grad ? 1 : 0);
  h = hash_combine(h, sizes.size());
  for (std::int64_t size : sizes) h = hash_combine(h, static_cast<HashValue>(size));
  for (std::int64_t stride : strides) h = hash_combine(h, static_cast<HashValue>(stride));
  return h;
}

}  // namespace terra::graph
