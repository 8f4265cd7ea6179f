// Warnings (TORCH_WARN) raised by the kernels of the program's ops. In eager they reach Python
// as Python warnings when the op returns (the binding's handler turns them into
// `warnings.warn`, and into an exception under `simplefilter("error")`); a kernel run by the
// GraphRunner would print them to stderr instead. So an op that warned while traced is
// marked (graph::OpFlags::warns) and co-executed on the Python thread, and a warning the
// runner meets anyway (one that depends on values) is collected and reissued on the Python
// thread at its next op, marking its node for the iterations after.
#pragma once

#include <c10/util/Exception.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

namespace terra::coexec {

// For a scope on the calling thread: notes whether an op warned and passes every warning on
// to the handler that was current (Python's, while an op called from Python runs).
class WarningWatch : public c10::WarningHandler {
 public:
  WarningWatch() : previous_(c10::WarningUtils::get_warning_handler()) {
    c10::WarningUtils::set_warning_handler(this);
  }
  ~WarningWatch() override { c10::WarningUtils::set_warning_handler(previous_); }
  WarningWatch(const WarningWatch&) = delete;
  WarningWatch& operator=(const WarningWatch&) = delete;

  void process(const c10::Warning& warning) override {
    warned_ = true;
    previous_->process(warning);
  }
  bool warned() const { return warned_; }

 private:
  c10::WarningHandler* previous_;
  bool warned_ = false;
};

// A warning raised by a queued op's kernel on the runner thread, and the node that raised it.
struct RunnerWarning {
  int region = -1;
  std::uint32_t node = 0;
  c10::Warning warning;
};

// The runner thread's warning handler: keeps what the op running now raises for the Python
// thread (RunnerWarnings::take), instead of printing it.
class RunnerWarnings : public c10::WarningHandler {
 public:
  // Runner thread: the op that warnings raised from now on belong to.
  void set_current(int region, std::uint32_t node) {
    region_ = region;
    node_ = node;
  }
  void process(const c10::Warning& warning) override {
    std::lock_guard<std::mutex> lock(mutex_);
    warnings_.push_back({region_, node_, warning});
    any_.store(true, std::memory_order_release);
  }
  // Any thread, cheap: warnings wait to be taken.
  bool any() const { return any_.load(std::memory_order_relaxed); }
  std::vector<RunnerWarning> take() {
    std::vector<RunnerWarning> taken;
    std::lock_guard<std::mutex> lock(mutex_);
    any_.store(false, std::memory_order_relaxed);
    taken.swap(warnings_);
    return taken;
  }

 private:
  // Written per op by the runner; `any_`, read per op by the Python thread, is on a line of
  // its own.
  alignas(64) int region_ = -1;
  std::uint32_t node_ = 0;
  std::mutex mutex_;
  std::vector<RunnerWarning> warnings_;  // under mutex_
  alignas(64) std::atomic<bool> any_{false};
};

}  // namespace terra::coexec
