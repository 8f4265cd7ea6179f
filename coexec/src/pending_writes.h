// PendingWrites: which queued ops write which storages, so that an op Python must run at once
// (a fetch such as `.item()`, an op between iterations) waits only for the queued ops that
// write what it reads, not for the whole queue. Ops are named by the GraphRunner's sequence
// numbers; an entry says how many committed ops must have finished before the storage holds
// its value. Keys are the program's StorageImpls (views share them). A stale entry (its
// storage freed, the address reused) can only make a wait longer, never shorter.
#pragma once

#include <c10/core/StorageImpl.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "pointer_map.h"

namespace terra::coexec {

class PendingWrites {
 public:
  // Op number `sequence` (committed or about to be) writes `storage`.
  void write(c10::StorageImpl* storage, std::uint64_t sequence) {
    if (storage == nullptr) return;
    writers_.insert_or_assign(storage, sequence + 1);
  }

  // How many committed ops must finish before `storage` may be read (0: none).
  std::uint64_t before_reading(c10::StorageImpl* storage) {
    const std::uint64_t* needed = writers_.find(storage);
    return needed == nullptr ? 0 : *needed;
  }

  // Drops entries of finished ops once the table grew past `limit` (keeps it small in loops
  // that never drain the queue).
  void forget_finished(std::uint64_t finished, std::size_t limit) {
    if (writers_.size() <= limit) return;
    writers_.retain_if([&](c10::StorageImpl*, std::uint64_t needed) { return needed > finished; });
  }

  // Every queued op finished.
  void clear() { writers_.clear(); }

 private:
  PointerMap<c10::StorageImpl*, std::uint64_t> writers_;
};

}  // namespace terra::coexec
