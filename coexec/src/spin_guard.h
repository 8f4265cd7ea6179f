// A lock held for a few instructions (or while the runner fills one placeholder), on a flag
// that costs a byte where a std::mutex would cost forty.
#pragma once

#include <atomic>
#include <thread>

namespace terra::coexec {

class SpinGuard {
 public:
  explicit SpinGuard(std::atomic<bool>& flag) : flag_(flag) {
    while (flag_.exchange(true, std::memory_order_acquire)) {
      while (flag_.load(std::memory_order_relaxed)) std::this_thread::yield();
    }
  }
  ~SpinGuard() { flag_.store(false, std::memory_order_release); }
  SpinGuard(const SpinGuard&) = delete;
  SpinGuard& operator=(const SpinGuard&) = delete;

 private:
  std::atomic<bool>& flag_;
};

}  // namespace terra::coexec
