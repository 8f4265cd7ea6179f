// External memory (coexec/src/external_memory.h): what counts as memory torch's allocators
// did not make, snapshots that keep a view's layout, and exposure counted per numpy array.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <vector>

#include "external_memory.h"

namespace terra::coexec {
namespace {

c10::StorageImpl& storage_of(const at::Tensor& tensor) {
  return *tensor.storage().unsafeGetStorageImpl();
}

TEST(ExternalMemory, ForeignIsMemoryNoTorchAllocatorMade) {
  std::vector<float> buffer(12, 1.0f);  // as a numpy array's memory would be
  at::Tensor wrapped = at::from_blob(
      buffer.data(), {3, 4}, [](void*) {}, at::kFloat);
  EXPECT_TRUE(is_foreign_memory(storage_of(wrapped)));
  EXPECT_FALSE(is_foreign_memory(storage_of(at::ones({3, 4}))));
  EXPECT_FALSE(is_foreign_memory(storage_of(wrapped.clone())));
}

TEST(ExternalMemory, SnapshotKeepsTheViewsLayoutAndCopiesOnlyItsExtent) {
  std::vector<float> buffer(24);
  for (std::size_t i = 0; i < buffer.size(); ++i) buffer[i] = static_cast<float>(i);
  at::Tensor base = at::from_blob(
      buffer.data(), {4, 6}, [](void*) {}, at::kFloat);
  at::Tensor view = base.slice(0, 1, 3).slice(1, 2, 5).t();  // strided, offset, transposed
  at::Tensor copy = snapshot(view);
  EXPECT_TRUE(at::equal(copy, view));
  EXPECT_EQ(copy.sizes(), view.sizes());
  EXPECT_EQ(copy.strides(), view.strides());
  EXPECT_EQ(copy.storage_offset(), 0);
  EXPECT_EQ(copy.storage().nbytes(), extent_bytes(view));
  EXPECT_FALSE(is_foreign_memory(storage_of(copy)));
  buffer[8] = -1.0f;  // the view's first element: the snapshot keeps the old value
  EXPECT_EQ(copy[0][0].item<float>(), 8.0f);
  EXPECT_EQ(view[0][0].item<float>(), -1.0f);
}

TEST(ExternalMemory, ExposureLastsUntilTheLastArrayIsReleased) {
  ExposedStorages exposed;
  at::Tensor tensor = at::zeros({4});
  c10::StorageImpl* storage = &storage_of(tensor);
  EXPECT_FALSE(exposed.contains(storage));
  exposed.expose(storage);
  exposed.expose(storage);  // a second array over the same memory
  exposed.release(storage);
  EXPECT_TRUE(exposed.contains(storage));
  exposed.release(storage);
  EXPECT_FALSE(exposed.contains(storage));
  exposed.release(storage);  // an unknown release changes nothing
  EXPECT_FALSE(exposed.contains(storage));
}

}  // namespace
}  // namespace terra::coexec
