#include "kernel/fd_capture.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <iostream>
#include <stdexcept>
#include <streambuf>

namespace terra::kernel {
namespace {

constexpr std::size_t kReadChunk = 64 * 1024;
// A drain stops after this much even if some thread keeps writing.
constexpr std::size_t kMaxDrainBytes = std::size_t(64) << 20;

void set_nonblocking_cloexec(int fd) {
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
}

void write_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
}

// Largest prefix length <= limit that does not cut a UTF-8 character.
std::size_t utf8_cut(const std::string& text, std::size_t limit) {
  if (text.size() <= limit) return text.size();
  std::size_t cut = limit;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return cut == 0 ? limit : cut;
}

bool same_file(int a, int b) {
  struct stat sa, sb;
  if (::fstat(a, &sa) != 0 || ::fstat(b, &sb) != 0) return false;
  return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

}  // namespace

// std::cerr and std::clog are where xeus and other C++ code log. While a request runs, it is cell
// output like any write to fd 2; between requests it goes to the kernel log, so that a
// rejected message never shows up in the next cell's output.
class fd_capture::cerr_buffer : public std::streambuf {
 public:
  explicit cerr_buffer(const fd_capture& owner) : m_owner(owner) {}

 protected:
  int_type overflow(int_type ch) override {
    if (ch == traits_type::eof()) return traits_type::not_eof(ch);
    char c = static_cast<char>(ch);
    return xsputn(&c, 1) == 1 ? ch : traits_type::eof();
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    write_all(m_owner.in_request() ? 2 : m_owner.log_fd(), s, static_cast<std::size_t>(n));
    return n;
  }

 private:
  const fd_capture& m_owner;
};

fd_capture::fd_capture(publish_fn publish) : fd_capture(std::move(publish), options{}) {}

fd_capture::fd_capture(publish_fn publish, options opts)
    : m_publish(std::move(publish)), m_options(opts) {
  m_streams[0].name = "stdout";
  m_streams[0].target_fd = 1;
  m_streams[1].name = "stderr";
  m_streams[1].target_fd = 2;
}

fd_capture::~fd_capture() { stop(); }

void fd_capture::start() {
  if (m_running.load()) return;
  std::fflush(stdout);
  std::fflush(stderr);
  m_log_fd = ::fcntl(2, F_DUPFD_CLOEXEC, 3);
  for (auto& s : m_streams) {
    int fds[2];
    if (::pipe(fds) != 0) throw std::runtime_error("terra-kernel: cannot create output pipe");
    s.read_fd = fds[0];
    s.write_fd = fds[1];
    set_nonblocking_cloexec(s.read_fd);
    ::fcntl(s.write_fd, F_SETFD, FD_CLOEXEC);  // the dup2'd fd 1/2 stay inheritable
    s.saved_fd = ::fcntl(s.target_fd, F_DUPFD_CLOEXEC, 3);
    ::dup2(s.write_fd, s.target_fd);
  }
  int wake_fds[2];
  if (::pipe(wake_fds) != 0) throw std::runtime_error("terra-kernel: cannot create wake pipe");
  m_wake_read = wake_fds[0];
  m_wake_write = wake_fds[1];
  set_nonblocking_cloexec(m_wake_read);
  set_nonblocking_cloexec(m_wake_write);
  // C stdio to a pipe is fully buffered; line buffering lets printf stream by line.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);

  // The reader must never take SIGINT: interrupts belong to the main thread.
  sigset_t block, previous;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  pthread_sigmask(SIG_BLOCK, &block, &previous);
  m_stop = false;
  m_running.store(true);
  m_thread = std::thread([this] { run(); });
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  route_cerr();
}

void fd_capture::stop() {
  if (!m_running.exchange(false)) return;
  std::fflush(stdout);
  std::fflush(stderr);
  {
    std::lock_guard<std::mutex> lock(m_mutex);
    m_stop = true;
  }
  wake();
  if (m_thread.joinable()) m_thread.join();
  unroute_cerr();
  for (auto& s : m_streams) {
    ::dup2(s.saved_fd, s.target_fd);
    for (int* fd : {&s.read_fd, &s.write_fd, &s.saved_fd}) {
      ::close(*fd);
      *fd = -1;
    }
  }
  ::close(m_wake_read);
  ::close(m_wake_write);
  m_wake_read = m_wake_write = -1;
}

void fd_capture::begin_request() {
  m_active.store(true);
  wake();  // publish output held since the last request
}

void fd_capture::end_request() {
  drain();
  m_active.store(false);
}

void fd_capture::drain() {
  if (!m_running.load()) return;
  std::fflush(stdout);
  std::fflush(stderr);
  std::unique_lock<std::mutex> lock(m_mutex);
  const std::uint64_t ticket = ++m_drain_requested;
  lock.unlock();
  wake();
  lock.lock();
  // Bounded: the reader never blocks on anything the caller could be holding.
  m_drained.wait_for(lock, std::chrono::seconds(10), [&] { return m_drain_done >= ticket; });
}

void fd_capture::restore_fds() {
  if (!m_running.load()) return;
  for (auto& s : m_streams) {
    if (!same_file(s.target_fd, s.write_fd)) ::dup2(s.write_fd, s.target_fd);
  }
}

void fd_capture::wake() {
  if (m_wake_write >= 0) {
    const char byte = 1;
    (void)!::write(m_wake_write, &byte, 1);
  }
}

void fd_capture::route_cerr() {
  std::cerr.flush();
  m_cerr_buffer = std::make_unique<cerr_buffer>(*this);
  m_saved_cerr = std::cerr.rdbuf(m_cerr_buffer.get());
  m_saved_clog = std::clog.rdbuf(m_cerr_buffer.get());
}

void fd_capture::unroute_cerr() {
  if (m_saved_cerr != nullptr) {
    std::cerr.rdbuf(m_saved_cerr);
    std::clog.rdbuf(m_saved_clog);
    m_saved_cerr = m_saved_clog = nullptr;
  }
}

bool fd_capture::read_once(stream_state& s) {
  char buffer[kReadChunk];
  ssize_t n = ::read(s.read_fd, buffer, sizeof buffer);
  if (n <= 0) return false;
  if (s.pending.empty()) s.first_pending = std::chrono::steady_clock::now();
  s.pending += s.decoder.decode(buffer, static_cast<std::size_t>(n));
  if (!m_active.load()) hold_limit(s);
  return true;
}

void fd_capture::read_all_available(stream_state& s) {
  std::size_t total = 0;
  while (total < kMaxDrainBytes && read_once(s)) total += kReadChunk;
}

void fd_capture::hold_limit(stream_state& s) {
  if (s.pending.size() <= m_options.max_held_bytes) return;
  std::size_t excess = s.pending.size() - m_options.max_held_bytes;
  while (excess < s.pending.size() &&
         (static_cast<unsigned char>(s.pending[excess]) & 0xC0) == 0x80) {
    ++excess;
  }
  s.pending.erase(0, excess);
  s.dropped_bytes += excess;
}

void fd_capture::publish_pending(stream_state& s) {
  if (s.dropped_bytes > 0) {
    s.pending.insert(0, "[terra-kernel: " + std::to_string(s.dropped_bytes) +
                            " bytes of output written between cells were dropped]\n");
    s.dropped_bytes = 0;
  }
  while (!s.pending.empty()) {
    const std::size_t cut = utf8_cut(s.pending, m_options.max_message_bytes);
    std::string text = s.pending.substr(0, cut);
    s.pending.erase(0, cut);
    try {
      m_publish(s.name, text);
    } catch (const std::exception& e) {
      const std::string line =
          std::string("terra-kernel: cannot publish output: ") + e.what() + "\n";
      write_all(m_log_fd, line.data(), line.size());
    }
  }
}

void fd_capture::publish_due(std::chrono::steady_clock::time_point now) {
  for (auto& s : m_streams) {
    if (s.pending.empty()) continue;
    const bool old = now - s.first_pending >= m_options.flush_interval;
    if (old || s.pending.size() >= m_options.max_message_bytes) publish_pending(s);
  }
}

int fd_capture::poll_timeout_ms(std::chrono::steady_clock::time_point now) const {
  if (!m_active.load()) return -1;
  int timeout = -1;
  for (const auto& s : m_streams) {
    if (s.pending.empty()) continue;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        s.first_pending + m_options.flush_interval - now);
    int ms = left.count() < 0 ? 0 : static_cast<int>(left.count());
    timeout = timeout < 0 ? ms : std::min(timeout, ms);
  }
  return timeout;
}

void fd_capture::run() {
  for (;;) {
    pollfd fds[3] = {{m_streams[0].read_fd, POLLIN, 0},
                     {m_streams[1].read_fd, POLLIN, 0},
                     {m_wake_read, POLLIN, 0}};
    int rc = ::poll(fds, 3, poll_timeout_ms(std::chrono::steady_clock::now()));
    if (rc < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].revents & POLLIN) read_once(m_streams[i]);
    }
    if (fds[2].revents & POLLIN) {
      char sink[64];
      while (::read(m_wake_read, sink, sizeof sink) > 0) {
      }
    }

    std::uint64_t requested;
    bool stop;
    {
      std::lock_guard<std::mutex> lock(m_mutex);
      requested = m_drain_requested;
      stop = m_stop;
    }
    const bool draining = stop || requested > m_drain_done;
    if (draining) {
      for (auto& s : m_streams) read_all_available(s);
    }
    if (m_active.load()) {
      if (draining) {
        for (auto& s : m_streams) publish_pending(s);
      } else {
        publish_due(std::chrono::steady_clock::now());
      }
    }
    if (draining) {
      std::lock_guard<std::mutex> lock(m_mutex);
      m_drain_done = requested;
      m_drained.notify_all();
    }
    if (stop) break;
  }
  // Whatever could not be published goes to the log rather than being lost silently.
  for (auto& s : m_streams) {
    s.pending += s.decoder.finish();
    write_all(m_log_fd, s.pending.data(), s.pending.size());
    s.pending.clear();
  }
}

}  // namespace terra::kernel
