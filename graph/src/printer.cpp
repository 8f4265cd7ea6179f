#include "terra/graph/printer.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <type_traits>
#include <utility>
#include <vector>

#include "terra/graph/trace_graph.h"

namespace terra::graph {
namespace {

// Shortest text that reads back to the same double ("%.17g" trimmed), "inf", "nan".
std::string format_double(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buffer[32];
  for (int precision = 6; precision <= 17; ++precision) {
    std::snprintf(buffer, sizeof buffer, "%.*g", precision, value);
    if (std::strtod(buffer, nullptr) == value) break;
  }
  std::string text = buffer;
  if (text.find_first_of(".en") == std::string::npos) text += ".0";  // keep it a double
  return text;
}

template <typename Items, typename Format>
std::string join(const Items& items, Format format) {
  std::string text = "[";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0) text += ",";
    text += format(items[i]);
  }
  return text + "]";
}

std::string int_text(std::int64_t v) { return std::to_string(v); }

bool is_contiguous(const TensorMeta& meta) {
  return meta.strides == TensorMeta::contiguous(meta.sizes).strides;
}

std::string outputs_text(const std::vector<OutputInfo>& outputs) {
  std::string text;
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    if (i > 0) text += ", ";
    text += to_string(outputs[i].meta);
    if (outputs[i].alias == AliasKind::kView)
      text += " view($" + std::to_string(outputs[i].input) + ")";
    if (outputs[i].alias == AliasKind::kSame)
      text += " is($" + std::to_string(outputs[i].input) + ")";
  }
  return text.empty() ? "()" : text;
}

std::string flags_text(const OpFlags& flags, bool outputs_vary) {
  std::string text;
  if (flags.is_fetch) text += " fetch";
  if (flags.is_view_op) text += " view";
  if (flags.is_inplace) text += " inplace";
  if (flags.is_random) text += " random";
  if (flags.data_dependent_shape) text += " data-dependent";
  if (flags.warns) text += " warns";
  if (outputs_vary) text += " outputs-vary";
  return text;
}

std::string node_line(const Node& node) {
  std::ostringstream line;
  line << "#" << node.id << " s" << node.step << " " << to_string(node.identity) << " -> "
       << outputs_text(node.outputs) << flags_text(node.flags, node.outputs_vary)
       << " count=" << node.count;
  if (node.ends > 0) line << " ends=" << node.ends;
  if (!node.source.file.empty()) line << " @" << node.source.file.str() << ":" << node.source.line;
  if (!node.module_path.empty()) line << " [" << node.module_path << "]";
  return line.str();
}

std::string branch_line(const Node& node) {
  std::ostringstream line;
  line << "branch at " << (node.is_root() ? std::string("entry") : "#" + std::to_string(node.id))
       << ": ";
  for (std::size_t i = 0; i < node.children.size(); ++i) {
    if (i > 0) line << " | ";
    line << "#" << node.children[i] << " x" << node.taken[i];
  }
  line << " (last " << node.last_taken << ")";
  return line.str();
}

// Depth-first, children in creation order; a branch point prints a branch line and indents
// each of its subtrees. Iterative, so long chains do not grow the C++ stack.
void print_tree(const TraceGraph& graph, std::ostringstream& out) {
  std::vector<std::pair<NodeId, int>> pending;  // (node, indent)
  auto push_children = [&](const Node& node, int indent) {
    int child_indent = node.is_branch() ? indent + 2 : indent;
    if (node.is_branch()) out << std::string(indent, ' ') << branch_line(node) << "\n";
    for (auto it = node.children.rbegin(); it != node.children.rend(); ++it) {
      pending.emplace_back(*it, child_indent);
    }
  };
  push_children(graph.root(), 0);
  while (!pending.empty()) {
    auto [id, indent] = pending.back();
    pending.pop_back();
    const Node& node = graph.node(id);
    out << std::string(indent, ' ') << node_line(node) << "\n";
    push_children(node, indent);
  }
}

}  // namespace

std::string to_string(const TensorMeta& meta) {
  std::string text = meta.dtype + join(meta.sizes, int_text);
  if (!is_contiguous(meta)) text += " s=" + join(meta.strides, int_text);
  if (meta.storage_offset != 0) text += " +" + std::to_string(meta.storage_offset);
  if (meta.device != "cpu") text += " @" + meta.device;
  if (meta.requires_grad) text += " grad";
  return text;
}

std::string to_string(const Arg& arg) {
  return std::visit(
      [](const auto& v) -> std::string {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, NoneArg>) {
          return "None";
        } else if constexpr (std::is_same_v<T, bool>) {
          return v ? "true" : "false";
        } else if constexpr (std::is_same_v<T, std::int64_t>) {
          return std::to_string(v);
        } else if constexpr (std::is_same_v<T, double>) {
          return format_double(v);
        } else if constexpr (std::is_same_v<T, std::string>) {
          return "\"" + v + "\"";
        } else if constexpr (std::is_same_v<T, IntList>) {
          return join(v, int_text);
        } else if constexpr (std::is_same_v<T, DoubleList>) {
          return join(v, format_double);
        } else if constexpr (std::is_same_v<T, ScalarFeed>) {
          return v.kind == ScalarKind::kInt ? "feed:int" : "feed:double";
        } else if constexpr (std::is_same_v<T, OtherArg>) {
          return "other(" + v.canonical + ")";
        } else if constexpr (std::is_same_v<T, TensorArg>) {
          return "$" + std::to_string(v.input);
        } else {
          return join(v.inputs, [](std::int32_t i) {
            return i == TensorListArg::kNoTensor ? std::string("None") : "$" + std::to_string(i);
          });
        }
      },
      arg.value());
}

std::string to_string(const InputRef& ref) {
  return std::visit(
      [](const auto& r) -> std::string {
        using T = std::decay_t<decltype(r)>;
        if constexpr (std::is_same_v<T, NodeOutput>) {
          return "%" + std::to_string(r.step) + "." + std::to_string(r.output);
        } else if constexpr (std::is_same_v<T, State>) {
          return "state:" + std::to_string(r.id);
        } else if constexpr (std::is_same_v<T, Feed>) {
          return "feed:" + std::to_string(r.index);
        } else {
          return "const:" + std::to_string(r.id);
        }
      },
      ref);
}

std::string to_string(const OpIdentity& identity) {
  const auto& inputs = identity.inputs();
  auto input_text = [&inputs](std::int64_t i) {
    if (i < 0 || static_cast<std::size_t>(i) >= inputs.size()) return "$" + std::to_string(i) + "?";
    return to_string(inputs[static_cast<std::size_t>(i)].ref);
  };
  std::string text = identity.op().qualified() + "(";
  for (std::size_t i = 0; i < identity.args().size(); ++i) {
    if (i > 0) text += ", ";
    const Arg& arg = identity.args()[i];
    if (arg.is<TensorArg>()) {
      text += input_text(arg.as<TensorArg>().input);
    } else if (arg.is<TensorListArg>()) {
      text += join(arg.as<TensorListArg>().inputs, [&](std::int32_t index) {
        return index == TensorListArg::kNoTensor ? std::string("None") : input_text(index);
      });
    } else {
      text += to_string(arg);
    }
  }
  text += ")";
  if (identity.context() != 0) text += " ctx=" + std::to_string(identity.context());
  return text;
}

std::string to_string(const OpRecord& record) {
  std::string text = to_string(record.identity) + " -> " + outputs_text(record.outputs);
  if (!record.source.file.empty()) {
    text += " @" + record.source.file.str() + ":" + std::to_string(record.source.line);
  }
  if (!record.module_path.empty()) text += " [" + record.module_path + "]";
  return text;
}

std::string print(const TraceGraph& graph) {
  std::ostringstream out;
  out << "TraceGraph: " << graph.size() << " nodes, " << graph.branch_count() << " branch points, "
      << graph.root().count << " iterations\n";
  print_tree(graph, out);
  for (const auto& [id, state] : graph.states()) {
    out << "state:" << id << " " << to_string(state.meta);
    if (!state.name.empty()) out << " \"" << state.name << "\"";
    out << "\n";
  }
  for (const auto& [index, feed] : graph.feeds()) {
    out << "feed:" << index << " " << to_string(feed.meta) << "\n";
  }
  for (const auto& [id, constant] : graph.constants()) {
    out << "const:" << id << " " << to_string(constant.meta) << "\n";
  }
  return out.str();
}

}  // namespace terra::graph
