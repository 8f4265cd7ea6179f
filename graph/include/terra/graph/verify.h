// The verifier: rejects malformed IR with one dedicated error type (STYLE §6).
#pragma once

#include <stdexcept>
#include <string>

namespace terra::graph {

class TraceGraph;

// Thrown by verify() for malformed IR; what() names the node and the broken rule.
class VerifyError : public std::runtime_error {
 public:
  explicit VerifyError(const std::string& message) : std::runtime_error(message) {}
};

// Checks every invariant of `graph` and throws VerifyError at the first violation:
// dense ids, parent/child/step consistency, taken counts and last_taken in range, counts
// conserved (count == sum(taken) + ends), NodeOutput refs to an ancestor's existing output,
// State/Feed/Constant refs present in the tables, tensor arg slots covering each input once,
// alias indices in range, cached identity hashes up to date.
void verify(const TraceGraph& graph);

}  // namespace terra::graph
