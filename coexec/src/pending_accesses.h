// PendingAccesses: which queued ops touch which storages, so that an op Python must run at
// once (a fetch such as `.item()`, an op between iterations) waits only for the queued ops it
// depends on, not for the whole queue; and so that an op on tiny tensors (an optimizer's step
// counter) may run at once when nothing queued touches them. Ops are named by the
// GraphRunner's sequence numbers; an entry says how many committed ops must have finished.
// Keys are the program's StorageImpls (views share them). Writes are recorded for every
// storage; reads only for tiny storages (kTinyBytes), the only ones an op may write at once.
// A stale entry (its storage freed, the address reused) can only make a wait longer.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/StorageImpl.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "pointer_map.h"

namespace terra::coexec {

// The key a tensor's accesses are recorded under: its StorageImpl (null without storage).
inline c10::StorageImpl* storage_of(const at::Tensor& tensor) {
  return tensor.has_storage() ? tensor.storage().unsafeGetStorageImpl() : nullptr;
}

class PendingAccesses {
 public:
  // Storages this small (a scalar or two) have their reads tracked.
  static constexpr std::size_t kTinyBytes = 16;

  static bool is_tiny(const c10::StorageImpl* storage) {
    return storage != nullptr && storage->nbytes() <= kTinyBytes;
  }

  // Op number `sequence` (committed or about to be) writes `storage`.
  void write(c10::StorageImpl* storage, std::uint64_t sequence) {
    if (storage == nullptr) return;
    Access& access = entry(storage);
    access.written = access.used = sequence + 1;
  }

  // Op number `sequence` reads `storage` (recorded for tiny storages only).
  void read(c10::StorageImpl* storage, std::uint64_t sequence) {
    if (!is_tiny(storage)) return;
    entry(storage).used = sequence + 1;
  }

  // How many committed ops must finish before `storage` may be read (0: none).
  std::uint64_t before_reading(c10::StorageImpl* storage) {
    const Access* access = accesses_.find(storage);
    return access == nullptr ? 0 : access->written;
  }

  // How many committed ops must finish before a tiny `storage` may be written.
  std::uint64_t before_writing(c10::StorageImpl* storage) {
    const Access* access = accesses_.find(storage);
    return access == nullptr ? 0 : access->used;
  }

  // Drops entries of finished ops once the table grew past `limit` (keeps it small in loops
  // that never drain the queue).
  void forget_finished(std::uint64_t finished, std::size_t limit) {
    if (accesses_.size() <= limit) return;
    accesses_.retain_if(
        [&](c10::StorageImpl*, const Access& access) { return access.used > finished; });
  }

  // Every queued op finished.
  void clear() { accesses_.clear(); }

 private:
  struct Access {
    std::uint64_t written = 0;
    std::uint64_t used = 0;  // read or written
  };

  Access& entry(c10::StorageImpl* storage) {
    if (Access* access = accesses_.find(storage)) return *access;
    accesses_.insert_or_assign(storage, Access{});
    return *accesses_.find(storage);
  }

  PointerMap<c10::StorageImpl*, Access> accesses_;
};

}  // namespace terra::coexec
