#include "terra/graph/varying_scalars.h"

#include <algorithm>

namespace terra::graph {

VaryingScalars::Point VaryingScalars::point_of(const OperatorName& op, const SourceLocation& source,
                                               const std::string& module_path) {
  return Point{op.qualified(), source.file.str(), source.line, module_path};
}

void VaryingScalars::note(const Node& node, std::size_t arg) {
  std::vector<std::size_t>& args =
      points_[point_of(node.identity.op(), node.source, node.module_path)];
  auto at = std::lower_bound(args.begin(), args.end(), arg);
  if (at == args.end() || *at != arg) args.insert(at, arg);
}

void VaryingScalars::note_all(const Node& node) {
  const std::vector<Arg>& args = node.identity.args();
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i].is<ScalarFeed>()) note(node, i);
  }
}

std::vector<std::size_t> VaryingScalars::args_of(const OpRecord& record) const {
  if (points_.empty()) return {};
  auto found = points_.find(point_of(record.identity.op(), record.source, record.module_path));
  if (found == points_.end()) return {};
  std::vector<std::size_t> args;
  const std::vector<Arg>& values = record.identity.args();
  for (std::size_t arg : found->second) {
    // The same operator has the same schema; the check only guards a malformed record.
    if (arg < values.size() && values[arg].may_generalise()) args.push_back(arg);
  }
  return args;
}

}  // namespace terra::graph
