// The calling thread's OpenMP worker threads, released while it does not need them.
//
// GNU OpenMP (the runtime PyTorch's Linux wheels ship) spins idle workers only while the
// process has no more OpenMP-managed threads than CPUs; past that, every parallel region
// wakes its workers through futexes. The GraphRunner has a team of its own beside the
// Python thread's (OpenMP teams belong to the thread that starts them), which doubles the
// count: measured on 2 cores, an eager LSTM step took 6.3 ms instead of 1.25 ms once the
// runner had run parallel kernels. So whichever thread goes quiet gives its team back.
#pragma once

namespace terra::coexec {

// Ends the calling thread's OpenMP worker threads (omp_pause_resource_all). The thread's
// next parallel region starts a new team with the same thread count, so results do not
// change. A no-op unless the process runs GNU OpenMP with OpenMP 5.0 pausing.
void release_openmp_threads();

}  // namespace terra::coexec
