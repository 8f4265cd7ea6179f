// The StorageImpl of a CPU placeholder: memory the GraphRunner provides once the op ran.
//
// The runner must give it that memory without holding it: autograd decides between in-place
// and out-of-place accumulation, and between stealing and cloning a gradient, by the use count
// of a tensor's storage (InputBuffer, AccumulateGrad), and a reference held by the runner for
// even a few instructions could make Python issue another op than eager (a fallback, seen in
// about 1 run in 25 of the residual refcount test). So the runner keeps only a weak reference
// (the object stays allocated) and fills it under `gate`; the program dropping its last
// reference releases the memory under the same gate, after which a fill drops what it brought.
#pragma once

#include <c10/core/StorageImpl.h>

#include <atomic>

#include "spin_guard.h"

namespace terra::coexec {

class PlaceholderStorage final : public c10::StorageImpl {
 public:
  using c10::StorageImpl::StorageImpl;

  // Program thread: the last strong reference is gone.
  void release_resources() override {
    c10::DataPtr released;
    {
      SpinGuard guard(gate_);
      released_ = true;
      released = set_data_ptr(c10::DataPtr(nullptr, device()));
    }
    // `released` frees the memory here, outside the gate.
  }

  // Runner thread, holding a weak reference: gives the storage `data` unless the program
  // released it meanwhile; returns what is to be freed (outside the gate).
  c10::DataPtr fill(c10::DataPtr data) {
    SpinGuard guard(gate_);
    if (released_) return data;
    return set_data_ptr(std::move(data));
  }

 private:
  std::atomic<bool> gate_{false};
  bool released_ = false;  // guarded by gate_
};

}  // namespace terra::coexec
