// VaryingScalars: the program points of a TraceGraph where a scalar argument varied.
//
// Merge turns an int/double argument of a node into a ScalarFeed once two iterations along
// that node's path differ only in it (trace_graph.h). A program point -- the same operator,
// called from the same source line inside the same module -- often lies on several paths:
// an optimizer's update after each of a few padded sequence lengths, a scheduled learning
// rate after either side of an `if`. Its scalar varies on every path alike, yet each new
// branch would need two more traversals to learn that again, and the first co-executed
// traversal would fall back on the scalar. So the graph remembers where scalars varied, and a
// node a merge adds at such a point starts with those arguments fed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "terra/graph/node.h"
#include "terra/graph/op_record.h"

namespace terra::graph {

class VaryingScalars {
 public:
  // Remembers that argument `arg` of `node` is a ScalarFeed (it varied there).
  void note(const Node& node, std::size_t arg);
  // Remembers every ScalarFeed argument of `node` (rebuilding the table from a graph).
  void note_all(const Node& node);
  // The indices of `record`'s int/double arguments that varied at its program point, in
  // increasing order; empty when none did.
  std::vector<std::size_t> args_of(const OpRecord& record) const;
  bool empty() const { return points_.empty(); }

 private:
  // operator (qualified, with overload), source file, source line, module path
  using Point = std::tuple<std::string, std::string, std::int32_t, std::string>;
  static Point point_of(const OperatorName& op, const SourceLocation& source,
                        const std::string& module_path);

  std::map<Point, std::vector<std::size_t>> points_;  // sorted argument indices per point
};

}  // namespace terra::graph
