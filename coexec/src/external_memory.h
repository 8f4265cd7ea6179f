// External memory: tensor memory the program can write without the dispatcher. Either a
// numpy array's (torch.from_numpy, torch.as_tensor, torch.frombuffer: memory torch's own
// allocators did not make), or a tensor's own memory while a numpy array made by
// Tensor.numpy() views it (ExposedStorages; the Python hook registers it for the array's
// lifetime). Eager reads such memory when the op runs; a queued op would read it when the
// GraphRunner gets to it, after the program may have written it again (a numpy buffer
// refilled for the next batch). So co-execution gives a queued op that reads it a snapshot
// taken at the op's place in the program, and runs at once an op that writes it, or reads more
// of it than a snapshot should copy (coexecute_matched).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/StorageImpl.h>

#include <atomic>
#include <cstddef>
#include <mutex>
#include <unordered_map>

namespace terra::coexec {

// A queued op's external inputs up to this many bytes in all are copied; beyond, it runs now.
inline constexpr std::size_t kSnapshotMaxBytes = std::size_t{1} << 20;

// True for CPU memory no torch allocator made (numpy arrays, Python buffers). Shared memory
// and mmap'ed files (MapAllocator), copy-on-write storages and the runner's own shares are
// torch's. Not for a PlaceholderStorage (the runner may be filling it): callers skip those.
bool is_foreign_memory(const c10::StorageImpl& storage);

// A copy of `tensor`'s elements with its sizes, strides and conj/neg bits, in memory of the
// default CPU allocator (only the extent the view covers is copied).
at::Tensor snapshot(const at::Tensor& tensor);

// The bytes from a strided tensor's first element to its last.
std::size_t extent_bytes(const at::Tensor& tensor);

// Storages viewed by live numpy arrays, counted per array. Registered from Python (any
// thread, the GIL held), read by the engine's thread, which may run without the GIL during
// backward: hence the mutex, and an emptiness flag that spares the common case the lock.
class ExposedStorages {
 public:
  void expose(c10::StorageImpl* storage);
  void release(c10::StorageImpl* storage);
  bool contains(c10::StorageImpl* storage) const;

 private:
  mutable std::mutex mutex_;
  std::atomic<std::size_t> size_{0};
  std::unordered_map<c10::StorageImpl*, std::size_t> arrays_;  // storage -> live arrays
};

}  // namespace terra::coexec
