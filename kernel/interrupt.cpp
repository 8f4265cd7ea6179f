#include "kernel/interrupt.hpp"

#include <Python.h>
#include <pthread.h>
#include <signal.h>

#include <atomic>

namespace terra::kernel::interrupt {
namespace {

std::atomic<bool> g_executing{false};
pthread_t g_main_thread;
std::atomic<bool> g_installed{false};

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

void interrupt_main_thread() {
  if (g_installed.load() && g_executing.load()) pthread_kill(g_main_thread, SIGINT);
}

}  // namespace terra::kernel::interrupt
