#include "kernel/interrupt.hpp"

#include <Python.h>
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace terra::kernel::interrupt {
namespace {

std::atomic<bool> g_executing{false};
pthread_t g_main_thread;
std::atomic<bool> g_installed{false};

// A blocking wait that only a signal arriving *during* it wakes (stdin_wait_scope), and the
// re-signalling thread an interrupt starts while one is open.
std::mutex g_wait_mutex;
std::condition_variable g_wait_changed;
bool g_waiting = false;       // guarded by g_wait_mutex
bool g_resignalling = false;  // guarded by g_wait_mutex
constexpr auto kResignalEvery = std::chrono::milliseconds(50);
constexpr int kMaxResignals = 200;  // 10 s: a receive that never wakes is given up on

// Async-signal-safe: an atomic load, pthread_self/pthread_kill and
// PyErr_SetInterruptEx (documented as async-signal-safe).
void on_sigint(int) {
  if (!pthread_equal(pthread_self(), g_main_thread)) {
    // Only the main thread runs cells and its blocking calls must see EINTR.
    pthread_kill(g_main_thread, SIGINT);
    return;
  }
  if (g_executing.load()) PyErr_SetInterruptEx(SIGINT);
}

void set_sigint_mask(int how) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  pthread_sigmask(how, &set, nullptr);
}

}  // namespace

void install() {
  g_main_thread = pthread_self();
  struct sigaction action = {};
  action.sa_handler = on_sigint;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART: blocking calls return EINTR and check signals
  sigaction(SIGINT, &action, nullptr);
  block_in_this_thread();
  g_installed.store(true);
}

void block_in_this_thread() { set_sigint_mask(SIG_BLOCK); }

void unblock_in_this_thread() { set_sigint_mask(SIG_UNBLOCK); }

// Between cells the main thread blocks SIGINT: a signal then stays pending instead of
// interrupting xeus' own blocking calls (which would end its message loop). Opening the
// outermost scope drops such a stale signal and unblocks; closing it blocks again.
executing_scope::executing_scope() : m_previous(g_executing.load()) {
  if (m_previous) return;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  const timespec no_wait = {0, 0};
  while (sigtimedwait(&set, nullptr, &no_wait) == SIGINT) {
  }
  g_executing.store(true);
  unblock_in_this_thread();
}

executing_scope::~executing_scope() {
  if (m_previous) return;
  block_in_this_thread();
  g_executing.store(false);
}

bool is_executing() { return g_executing.load(); }

stdin_wait_scope::stdin_wait_scope() {
  std::lock_guard<std::mutex> lock(g_wait_mutex);
  g_waiting = true;
}

stdin_wait_scope::~stdin_wait_scope() {
  // No re-signal may land after the wait: it would be a second KeyboardInterrupt, later on.
  std::unique_lock<std::mutex> lock(g_wait_mutex);
  g_waiting = false;
  g_wait_changed.notify_all();
  g_wait_changed.wait(lock, [] { return !g_resignalling; });
}

namespace {

// While the main thread is still in its wait, signals it again every kResignalEvery.
void resignal_while_waiting() {
  std::unique_lock<std::mutex> lock(g_wait_mutex);
  for (int i = 0; i < kMaxResignals && g_waiting; ++i) {
    g_wait_changed.wait_for(lock, kResignalEvery, [] { return !g_waiting; });
    if (g_waiting && g_executing.load()) pthread_kill(g_main_thread, SIGINT);
  }
  g_resignalling = false;
  g_wait_changed.notify_all();
}

}  // namespace

void interrupt_main_thread() {
  if (!g_installed.load() || !g_executing.load()) return;
  pthread_kill(g_main_thread, SIGINT);
  // A signal that lands between sending an input request and blocking on its reply only
  // sets Python's flag, and the receive then blocks on. So while such a wait is open, the
  // signal is repeated until the wait ends (on a thread of its own: the control channel
  // goes on serving meanwhile).
  std::lock_guard<std::mutex> lock(g_wait_mutex);
  if (!g_waiting || g_resignalling) return;
  g_resignalling = true;
  std::thread(resignal_while_waiting).detach();
}

}  // namespace terra::kernel::interrupt
