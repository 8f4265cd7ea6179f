#include "openmp_threads.h"

#include <dlfcn.h>

namespace terra::coexec {
namespace {

using PauseAll = int (*)(int);

// Looked up rather than linked: LibTorch may be built against GNU, LLVM or Intel OpenMP, or
// none. Only GNU OpenMP's is used: there, pausing ends the calling thread's team alone (the
// other thread may be inside a parallel region meanwhile); LLVM's and Intel's runtimes pause
// the whole process, and they do not throttle spinning by thread count either.
PauseAll find_pause_all() {
  if (void* handle = dlopen("libgomp.so.1", RTLD_LAZY | RTLD_NOLOAD)) {
    if (void* symbol = dlsym(handle, "omp_pause_resource_all")) {
      return reinterpret_cast<PauseAll>(symbol);
    }
  }
  return nullptr;
}

constexpr int kOmpPauseHard = 2;  // omp_pause_hard: the threads end, not just sleep

}  // namespace

void release_openmp_threads() {
  static const PauseAll pause_all = find_pause_all();
  if (pause_all != nullptr) pause_all(kOmpPauseHard);
}

}  // namespace terra::coexec
