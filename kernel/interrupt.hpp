// SIGINT policy of the kernel: an interrupt raises KeyboardInterrupt in the running
// cell, is ignored between cells, and never kills the process.
#pragma once

namespace terra::kernel::interrupt {

// Records the calling thread as the one that runs cells, installs the SIGINT handler
// (replacing Python's at the C level) and blocks SIGINT in the calling thread, so that
// threads created afterwards inherit the block. Call once, on the main thread, after
// the interpreter is initialised and before any other thread is started.
void install();

// Blocks SIGINT in the calling thread (and in the threads it creates from now on).
void block_in_this_thread();
// Unblocks SIGINT in the calling thread.
void unblock_in_this_thread();

// Marks user code as running on the main thread for the scope's lifetime: only then is
// SIGINT unblocked there and does an interrupt raise KeyboardInterrupt. Nestable; main
// thread only.
class executing_scope {
 public:
  executing_scope();
  ~executing_scope();
  executing_scope(const executing_scope&) = delete;
  executing_scope& operator=(const executing_scope&) = delete;

 private:
  bool m_previous;
};

// True while an executing_scope is open.
bool is_executing();

// Marks the main thread as blocked on a stdin reply, which only a signal arriving during
// the receive wakes: an interrupt meanwhile re-signals until the scope closes. Main thread.
class stdin_wait_scope {
 public:
  stdin_wait_scope();
  ~stdin_wait_scope();
  stdin_wait_scope(const stdin_wait_scope&) = delete;
  stdin_wait_scope& operator=(const stdin_wait_scope&) = delete;
};

// Interrupts the running cell from any thread (control channel's interrupt_request):
// delivers SIGINT to the main thread so that blocking calls (time.sleep, input) wake up.
// Does nothing between cells.
void interrupt_main_thread();

}  // namespace terra::kernel::interrupt
