// External memory (external_memory.h): what torch's allocators did not make, snapshots, and
// the storages numpy arrays view.
#include "external_memory.h"

#include <ATen/EmptyTensor.h>
#include <ATen/MapAllocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/COW.h>

#include <cstring>

#include "graph_runner.h"

namespace terra::coexec {

bool is_foreign_memory(const c10::StorageImpl& storage) {
  const c10::DataPtr& data = storage.data_ptr();
  if (data.get() == nullptr || data.device().type() != c10::DeviceType::CPU) return false;
  static const c10::DeleterFnPtr cpu_deleter =
      c10::GetAllocator(c10::DeviceType::CPU)->raw_deleter();
  const c10::DeleterFnPtr deleter = data.get_deleter();
  if (deleter == cpu_deleter || is_runner_share(data)) return false;
  // Rarer owners, asked only for memory with another deleter.
  return at::MapAllocator::fromDataPtr(data) == nullptr &&
         at::RefcountedMapAllocator::fromDataPtr(data) == nullptr &&
         !c10::impl::cow::is_cow_data_ptr(data);
}

std::size_t extent_bytes(const at::Tensor& tensor) {
  if (tensor.numel() == 0) return 0;
  return at::detail::computeStorageNbytes(tensor.sizes(), tensor.strides(), tensor.itemsize());
}

at::Tensor snapshot(const at::Tensor& tensor) {
  at::Tensor copy =
      at::detail::empty_strided_cpu(tensor.sizes(), tensor.strides(), tensor.scalar_type());
  const std::size_t bytes = extent_bytes(tensor);
  if (bytes > 0) {
    const auto* first = static_cast<const char*>(tensor.storage().data()) +
                        tensor.storage_offset() * static_cast<std::int64_t>(tensor.itemsize());
    std::memcpy(copy.storage().mutable_data(), first, bytes);
  }
  copy.unsafeGetTensorImpl()->_set_conj(tensor.is_conj());
  copy.unsafeGetTensorImpl()->_set_neg(tensor.is_neg());
  return copy;
}

void ExposedStorages::expose(c10::StorageImpl* storage) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++arrays_[storage];
  size_.store(arrays_.size(), std::memory_order_release);
}

void ExposedStorages::release(c10::StorageImpl* storage) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto found = arrays_.find(storage);
  if (found == arrays_.end()) return;
  if (--found->second == 0) arrays_.erase(found);
  size_.store(arrays_.size(), std::memory_order_release);
}

bool ExposedStorages::contains(c10::StorageImpl* storage) const {
  if (size_.load(std::memory_order_acquire) == 0) return false;
  std::lock_guard<std::mutex> lock(mutex_);
  return arrays_.count(storage) > 0;
}

}  // namespace terra::coexec
