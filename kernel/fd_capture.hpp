// Capture of file descriptors 1 and 2: everything the process writes there (Python,
// C printf, LibTorch warnings, subprocesses) becomes Jupyter `stream` messages while
// the cell still runs.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "kernel/utf8_decoder.hpp"

namespace terra::kernel {

// Replaces fds 1 and 2 with pipes read by one reader thread, which coalesces what
// arrives and hands it to `publish` (at most one message per stream per flush interval,
// at most `max_message_bytes` each). Publishing happens only inside a request window
// (begin_request/end_request), when the parent header is stable; output written
// between requests is held (up to `max_held_bytes`) and published in the next window.
class fd_capture {
 public:
  using publish_fn = std::function<void(const std::string& name, const std::string& text)>;

  struct options {
    std::chrono::milliseconds flush_interval{40};
    std::size_t max_message_bytes = std::size_t(1) << 20;
    std::size_t max_held_bytes = std::size_t(4) << 20;
  };

  explicit fd_capture(publish_fn publish);
  fd_capture(publish_fn publish, options opts);
  ~fd_capture();
  fd_capture(const fd_capture&) = delete;
  fd_capture& operator=(const fd_capture&) = delete;

  // Creates the pipes, points fds 1 and 2 at them and starts the reader thread.
  void start();
  // Publishes what is left (if a window is open), points fds 1 and 2 back at what they
  // were before start(), and joins the reader thread. Idempotent.
  void stop();

  // Opens a request window: output is published from now on (held output first).
  void begin_request();
  // Drains, then closes the window.
  void end_request();
  // Returns once everything written to fds 1 and 2 before the call (C stdio buffers
  // included) has been published, or held when no window is open.
  void drain();
  // Points fds 1 and 2 at the pipes again when user code closed or replaced them.
  void restore_fds();
  // True while a request window is open.
  bool in_request() const noexcept { return m_active.load(); }
  // The process's original stderr: where kernel logs go, never into a cell's output.
  int log_fd() const noexcept { return m_log_fd; }

 private:
  struct stream_state {
    const char* name;
    int read_fd = -1;
    int write_fd = -1;
    int target_fd = -1;  // 1 or 2
    int saved_fd = -1;   // what target_fd was before start()
    utf8_decoder decoder;
    std::string pending;
    std::size_t dropped_bytes = 0;
    std::chrono::steady_clock::time_point first_pending;
  };

  void run();
  bool read_once(stream_state& s);
  void read_all_available(stream_state& s);
  void publish_pending(stream_state& s);
  void publish_due(std::chrono::steady_clock::time_point now);
  int poll_timeout_ms(std::chrono::steady_clock::time_point now) const;
  void wake();
  void hold_limit(stream_state& s);
  void route_cerr();
  void unroute_cerr();

  class cerr_buffer;

  publish_fn m_publish;
  options m_options;
  stream_state m_streams[2];
  int m_wake_read = -1;
  int m_wake_write = -1;
  int m_log_fd = -1;
  std::unique_ptr<cerr_buffer> m_cerr_buffer;
  std::streambuf* m_saved_cerr = nullptr;
  std::streambuf* m_saved_clog = nullptr;
  std::thread m_thread;
  std::atomic<bool> m_active{false};
  std::atomic<bool> m_running{false};

  std::mutex m_mutex;  // guards the three counters and m_stop
  std::condition_variable m_drained;
  std::uint64_t m_drain_requested = 0;
  std::uint64_t m_drain_done = 0;
  bool m_stop = false;
};

}  // namespace terra::kernel
