// Engine::Impl::reissue_runner_warnings (see op_warnings.h).
#include "op_warnings.h"

#include "engine_impl.h"

namespace terra::coexec {

void Engine::Impl::reissue_runner_warnings() {
  for (const RunnerWarning& raised : runner.warnings().take()) {
    // Node ids stay valid across merges (the graph only grows): later iterations run the
    // node on this thread, where the warning reaches Python in its place.
    Region* region = find_region(raised.region);
    if (region != nullptr && raised.node < region->graph.size()) {
      region->graph.mark_warns(raised.node);
    }
    // Inside an op called from Python, torch's handler: a Python warning when that op
    // returns (late, but not lost); elsewhere c10's default handler prints it, as before.
    c10::WarningUtils::get_warning_handler()->process(raised.warning);
  }
}

}  // namespace terra::coexec
