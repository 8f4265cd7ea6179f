// Fallback (DESIGN §3): the first op that matches no expected node ends co-execution for the
// rest of the iteration. The confirmed prefix finishes on the runner (every placeholder becomes
// real), the reason is kept for `%terra explain`, and the rest of the iteration is traced
// eagerly and merged from the divergence point when the iteration ends.
#include <sstream>
#include <string>

#include "call_identity.h"
#include "engine_impl.h"

namespace terra::coexec {

void Engine::Impl::fall_back(const OpInfo& info, const CallView& call) {
  Iteration& it = *iteration;
  Region& region = *it.region;
  std::ostringstream reason;
  reason << "region " << region.name << ": fallback at step " << region.cursor->steps()
         << "\n  got:      " << describe_identity(call.identity);
  graph::SharedString file;
  int line = 0;
  if (hooks.source_location && hooks.source_location(&file, &line)) {
    reason << "\n  at:       " << file.str() << ":" << line;
  }
  const graph::Node& position = region.cursor->position();
  if (position.children.empty()) {
    reason << "\n  expected: the end of the iteration";
  }
  for (graph::NodeId child : position.children) {
    reason << "\n  expected: " << describe_identity(region.graph.node(child).identity);
  }
  if (!position.is_root()) {
    reason << "\n  after:    " << describe_identity(position.identity);
  }
  last_fallback = reason.str();
  debug(1, last_fallback);
  (void)info;

  sync();  // the confirmed prefix runs; every placeholder is real from here on
  region.counters.fallbacks++;
  it.mode = IterationMode::kFallenBack;
  it.fallback_from = position.id;
  it.step = region.cursor->steps();
  it.trace = graph::Trace{};
}

}  // namespace terra::coexec
