#include "terra/graph/json.h"

#include <cmath>
#include <utility>

#include "terra/graph/verify.h"

namespace terra::graph {
namespace {

using nlohmann::json;

// ---- writing ----

json double_to_json(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  return value;
}

// Shape, strides, offset, dtype, device, requires_grad, merged into `object`.
void put_meta(json& object, const TensorMeta& meta) {
  object["shape"] = meta.sizes.vec();
  object["strides"] = meta.strides.vec();
  object["offset"] = meta.storage_offset;
  object["dtype"] = meta.dtype;
  object["device"] = meta.device;
  object["requires_grad"] = meta.requires_grad;
}

json arg_to_json(const Arg& arg) {
  return std::visit(
      [](const auto& v) -> json {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, NoneArg>) {
          return nullptr;
        } else if constexpr (std::is_same_v<T, double>) {
          return std::isfinite(v) ? json(v) : json{{"double", double_to_json(v)}};
        } else if constexpr (std::is_same_v<T, DoubleList>) {
          json items = json::array();
          for (double d : v) items.push_back(double_to_json(d));
          return {{"doubles", items}};
        } else if constexpr (std::is_same_v<T, ScalarFeed>) {
          return {{"scalar_feed", v.kind == ScalarKind::kInt ? "int" : "double"}};
        } else if constexpr (std::is_same_v<T, OtherArg>) {
          return {{"other", v.canonical}};
        } else if constexpr (std::is_same_v<T, TensorArg>) {
          return {{"input", v.input}};
        } else if constexpr (std::is_same_v<T, TensorListArg>) {
          json items = json::array();
          for (std::int32_t i : v.inputs) {
            items.push_back(i == TensorListArg::kNoTensor ? json(nullptr) : json(i));
          }
          return {{"inputs", items}};
        } else {
          return json(v);  // bool, int64, string, int list
        }
      },
      arg.value());
}

json input_to_json(const std::vector<NodeId>& path, const TensorInput& input) {
  json object = std::visit(
      [&](const auto& r) -> json {
        using T = std::decay_t<decltype(r)>;
        if constexpr (std::is_same_v<T, NodeOutput>) {
          return {{"node", path[r.step]}, {"port", r.output}};
        } else if constexpr (std::is_same_v<T, State>) {
          return {{"state", r.id}};
        } else if constexpr (std::is_same_v<T, Feed>) {
          return {{"feed", r.index}};
        } else {
          return {{"const", r.id}};
        }
      },
      input.ref);
  put_meta(object, input.meta);
  return object;
}

const char* alias_name(AliasKind alias) {
  switch (alias) {
    case AliasKind::kView:
      return "view";
    case AliasKind::kSame:
      return "same";
    default:
      return "fresh";
  }
}

json output_to_json(const OutputInfo& output) {
  json object = json::object();
  put_meta(object, output.meta);
  object["alias"] = alias_name(output.alias);
  if (output.alias != AliasKind::kFresh) object["of"] = output.input;
  return object;
}

json flags_to_json(const OpFlags& flags) {
  return {{"view", flags.is_view_op},
          {"inplace", flags.is_inplace},
          {"random", flags.is_random},
          {"data_dependent_shape", flags.data_dependent_shape},
          {"warns", flags.warns}};
}

// `path[s]`: the node's ancestor at step s (see TraceGraph::walk).
json node_to_json(const Node& node, const std::vector<NodeId>& path) {
  json inputs = json::array();
  for (const TensorInput& input : node.identity.inputs()) {
    inputs.push_back(input_to_json(path, input));
  }
  json args = json::array();
  for (const Arg& arg : node.identity.args()) args.push_back(arg_to_json(arg));
  json outputs = json::array();
  for (const OutputInfo& output : node.outputs) outputs.push_back(output_to_json(output));
  json object = {{"id", node.id},
                 {"op", node.identity.op().name()},
                 {"overload", node.identity.op().overload()},
                 {"label", node.identity.op().short_name()},
                 {"namespace", node.module_path},
                 {"step", node.step},
                 {"inputs", std::move(inputs)},
                 {"args", std::move(args)},
                 {"context", node.identity.context()},
                 {"outputs", std::move(outputs)},
                 {"source", {{"file", node.source.file.str()}, {"line", node.source.line}}},
                 {"succ", node.children},
                 {"fetch", node.flags.is_fetch},
                 {"flags", flags_to_json(node.flags)},
                 {"outputs_vary", node.outputs_vary},
                 {"count", node.count},
                 {"ends", node.ends}};
  if (node.timed > 0) {
    object["time_us"] = node.mean_time_us();
    object["timed"] = node.timed;
  }
  return object;
}

json branch_to_json(const Node& node) {
  json object = {{"succ", node.children}, {"counts", node.taken}, {"last", node.last_taken}};
  if (!node.is_root()) object["node"] = node.id;
  return object;
}

// ---- reading ----

[[noreturn]] void bad(const std::string& what) {
  throw JsonFormatError("terra.graph JSON: " + what);
}

const json& field(const json& object, const char* key) {
  if (!object.is_object()) bad(std::string("expected an object holding \"") + key + "\"");
  auto it = object.find(key);
  if (it == object.end()) bad(std::string("missing field \"") + key + "\"");
  return *it;
}

template <typename T>
T get(const json& object, const char* key) {
  try {
    return field(object, key).get<T>();
  } catch (const nlohmann::json::exception& e) {
    bad(std::string("field \"") + key + "\": " + e.what());
  }
}

template <typename T>
T get_or(const json& object, const char* key, T fallback) {
  if (!object.is_object() || !object.contains(key)) return fallback;
  return get<T>(object, key);
}

double double_from_json(const json& value) {
  if (value.is_number()) return value.get<double>();
  if (value == "nan") return std::nan("");
  if (value == "inf") return HUGE_VAL;
  if (value == "-inf") return -HUGE_VAL;
  bad("bad double " + value.dump());
}

TensorMeta meta_from_json(const json& object) {
  TensorMeta meta;
  meta.sizes = get<std::vector<std::int64_t>>(object, "shape");
  meta.strides = get_or<std::vector<std::int64_t>>(
      object, "strides", TensorMeta::contiguous(meta.sizes).strides.vec());
  meta.storage_offset = get_or<std::int64_t>(object, "offset", 0);
  meta.dtype = get<std::string>(object, "dtype");
  meta.device = get_or<std::string>(object, "device", "cpu");
  meta.requires_grad = get_or<bool>(object, "requires_grad", false);
  return meta;
}

Arg tagged_arg_from_json(const json& value) {
  if (value.contains("double")) return Arg(double_from_json(value["double"]));
  if (value.contains("doubles")) {
    DoubleList list;
    for (const json& item : field(value, "doubles")) list.push_back(double_from_json(item));
    return Arg(std::move(list));
  }
  if (value.contains("scalar_feed")) {
    std::string kind = get<std::string>(value, "scalar_feed");
    if (kind != "int" && kind != "double") bad("scalar_feed kind " + kind);
    return Arg(ScalarFeed{kind == "int" ? ScalarKind::kInt : ScalarKind::kDouble});
  }
  if (value.contains("other")) return Arg(OtherArg{get<std::string>(value, "other")});
  if (value.contains("input")) return Arg(TensorArg{get<std::uint32_t>(value, "input")});
  if (value.contains("inputs")) {
    TensorListArg list;
    for (const json& item : field(value, "inputs")) {
      list.inputs.push_back(item.is_null() ? TensorListArg::kNoTensor : item.get<std::int32_t>());
    }
    return Arg(std::move(list));
  }
  bad("unknown argument " + value.dump());
}

Arg arg_from_json(const json& value) {
  switch (value.type()) {
    case json::value_t::null:
      return Arg();
    case json::value_t::boolean:
      return Arg(value.get<bool>());
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return Arg(value.get<std::int64_t>());
    case json::value_t::number_float:
      return Arg(value.get<double>());
    case json::value_t::string:
      return Arg(value.get<std::string>());
    case json::value_t::array:
      return Arg(value.get<IntList>());
    case json::value_t::object:
      return tagged_arg_from_json(value);
    default:
      bad("unreadable argument " + value.dump());
  }
}

AliasKind alias_from_name(const std::string& name) {
  if (name == "fresh") return AliasKind::kFresh;
  if (name == "view") return AliasKind::kView;
  if (name == "same") return AliasKind::kSame;
  bad("unknown alias kind " + name);
}

// Node ids and their steps, needed to turn {"node": id} back into step references.
std::vector<std::uint32_t> steps_of(const json& nodes) {
  std::vector<std::uint32_t> steps(nodes.size());
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    if (get<std::size_t>(nodes[i], "id") != i) bad("node ids must be dense and in order");
    steps[i] = get<std::uint32_t>(nodes[i], "step");
  }
  return steps;
}

InputRef ref_from_json(const json& input, const std::vector<std::uint32_t>& steps) {
  if (input.contains("node")) {
    auto id = get<std::size_t>(input, "node");
    if (id >= steps.size()) bad("input refers to missing node " + std::to_string(id));
    return NodeOutput{steps[id], get<std::uint32_t>(input, "port")};
  }
  if (input.contains("state")) return State{get<std::int64_t>(input, "state")};
  if (input.contains("feed")) return Feed{get<std::int64_t>(input, "feed")};
  if (input.contains("const")) return Constant{get<std::int64_t>(input, "const")};
  bad("input without node/state/feed/const: " + input.dump());
}

Node node_from_json(const json& object, const std::vector<std::uint32_t>& steps) {
  Node node;
  node.id = get<NodeId>(object, "id");
  node.step = get<std::uint32_t>(object, "step");
  std::vector<Arg> args;
  for (const json& arg : field(object, "args")) args.push_back(arg_from_json(arg));
  std::vector<TensorInput> inputs;
  for (const json& input : field(object, "inputs")) {
    inputs.push_back({ref_from_json(input, steps), meta_from_json(input)});
  }
  node.identity = OpIdentity(
      OperatorName(get<std::string>(object, "op"), get_or<std::string>(object, "overload", "")),
      std::move(args), std::move(inputs), get_or<std::uint64_t>(object, "context", 0));
  for (const json& output : field(object, "outputs")) {
    OutputInfo info{meta_from_json(output),
                    alias_from_name(get_or<std::string>(output, "alias", "fresh")),
                    get_or<std::int32_t>(output, "of", -1)};
    node.outputs.push_back(std::move(info));
  }
  const json& source = field(object, "source");
  node.source = {get_or<std::string>(source, "file", ""), get_or<std::int32_t>(source, "line", 0)};
  node.module_path = get<std::string>(object, "namespace");
  node.children = get<std::vector<NodeId>>(object, "succ");
  node.flags.is_fetch = get<bool>(object, "fetch");
  const json flags = get_or<json>(object, "flags", json::object());
  node.flags.is_view_op = get_or<bool>(flags, "view", false);
  node.flags.is_inplace = get_or<bool>(flags, "inplace", false);
  node.flags.is_random = get_or<bool>(flags, "random", false);
  node.flags.data_dependent_shape = get_or<bool>(flags, "data_dependent_shape", false);
  node.flags.warns = get_or<bool>(flags, "warns", false);
  node.outputs_vary = get_or<bool>(object, "outputs_vary", false);
  node.count = get<std::uint64_t>(object, "count");
  node.ends = get_or<std::uint64_t>(object, "ends", 0);
  node.timed = get_or<std::uint64_t>(object, "timed", object.contains("time_us") ? 1 : 0);
  node.total_time_us = get_or<double>(object, "time_us", 0.0) * static_cast<double>(node.timed);
  return node;
}

// Parents from succ lists; taken counts and last choices from "branches" (branch points) or
// from the single child's count.
void link_nodes(Node& root, std::vector<Node>& nodes, const json& branches) {
  auto link = [&nodes](Node& parent) {
    for (NodeId child : parent.children) {
      if (child >= nodes.size()) bad("succ refers to missing node " + std::to_string(child));
      nodes[child].parent = parent.id;
    }
    parent.taken.clear();
    for (NodeId child : parent.children) parent.taken.push_back(nodes[child].count);
    parent.last_taken = parent.children.size() == 1 && parent.taken[0] > 0 ? 0 : -1;
  };
  link(root);
  for (Node& node : nodes) link(node);
  for (const json& branch : branches) {
    auto id = get<NodeId>(branch, "node");
    if (id >= nodes.size()) bad("branch at missing node " + std::to_string(id));
    Node& at = nodes[id];
    at.taken = get<std::vector<std::uint64_t>>(branch, "counts");
    at.last_taken = get<std::int32_t>(branch, "last");
  }
}

template <typename Info, typename Make>
std::map<std::int64_t, Info> table_from_json(const json& items, Make make) {
  std::map<std::int64_t, Info> table;
  for (const json& item : items) {
    Info info = make(item);
    table.emplace(get<std::int64_t>(item, "id"), std::move(info));
  }
  return table;
}

}  // namespace

nlohmann::json to_json(const TraceGraph& graph, const RegionInfo& region,
                       const nlohmann::json& stats) {
  std::vector<json> by_id(graph.size());
  graph.walk([&by_id](const Node& node, const std::vector<NodeId>& path) {
    by_id[node.id] = node_to_json(node, path);
  });
  json nodes = json::array();
  json branches = json::array();
  for (NodeId id = 0; id < graph.size(); ++id) {
    nodes.push_back(std::move(by_id[id]));
    if (graph.node(id).is_branch()) branches.push_back(branch_to_json(graph.node(id)));
  }
  json entry = branch_to_json(graph.root());
  entry["count"] = graph.root().count;
  entry["ends"] = graph.root().ends;
  json states = json::array();
  for (const auto& [id, state] : graph.states()) {
    json item = {{"id", id}, {"name", state.name}};
    put_meta(item, state.meta);
    states.push_back(std::move(item));
  }
  json feeds = json::array();
  for (const auto& [index, feed] : graph.feeds()) {
    json item = {{"id", index}};
    put_meta(item, feed.meta);
    feeds.push_back(std::move(item));
  }
  json constants = json::array();
  for (const auto& [id, constant] : graph.constants()) {
    json item = {{"id", id}};
    put_meta(item, constant.meta);
    constants.push_back(std::move(item));
  }
  return {
      {"format", kGraphJsonFormat},
      {"version", kGraphJsonVersion},
      {"region",
       {{"id", region.id}, {"name", region.name}, {"file", region.file}, {"line", region.line}}},
      {"entry", std::move(entry)},
      {"nodes", std::move(nodes)},
      {"branches", std::move(branches)},
      {"states", std::move(states)},
      {"feeds", std::move(feeds)},
      {"constants", std::move(constants)},
      {"stats", stats.is_null() ? json::object() : stats}};
}

std::string to_json_string(const TraceGraph& graph, const RegionInfo& region,
                           const nlohmann::json& stats, int indent) {
  return to_json(graph, region, stats).dump(indent);
}

GraphDocument from_json(const nlohmann::json& document) {
  if (!document.is_object()) bad("document is not an object");
  if (!document.contains("format") || document["format"] != kGraphJsonFormat) {
    bad("unknown format " + (document.contains("format") ? document["format"].dump() : "(none)") +
        "; this reader reads \"terra.graph\" version 1");
  }
  if (!document.contains("version") || document["version"] != kGraphJsonVersion) {
    bad("unsupported version " +
        (document.contains("version") ? document["version"].dump() : "(none)") +
        "; this reader supports version 1");
  }
  const json& nodes_json = field(document, "nodes");
  std::vector<std::uint32_t> steps = steps_of(nodes_json);
  std::vector<Node> nodes;
  nodes.reserve(nodes_json.size());
  for (const json& object : nodes_json) nodes.push_back(node_from_json(object, steps));

  Node root;
  const json entry = get_or<json>(document, "entry", json::object());
  root.children = get_or<std::vector<NodeId>>(entry, "succ", {});
  root.count = get_or<std::uint64_t>(entry, "count", 0);
  root.ends = get_or<std::uint64_t>(entry, "ends", 0);
  link_nodes(root, nodes, field(document, "branches"));
  if (entry.contains("counts")) root.taken = get<std::vector<std::uint64_t>>(entry, "counts");
  if (entry.contains("last")) root.last_taken = get<std::int32_t>(entry, "last");

  auto meta_of = [](const json& item) { return meta_from_json(item); };
  auto states = table_from_json<StateInfo>(field(document, "states"), [&](const json& item) {
    return StateInfo{get<std::int64_t>(item, "id"), meta_of(item),
                     get_or<std::string>(item, "name", "")};
  });
  auto feeds = table_from_json<FeedInfo>(field(document, "feeds"), [&](const json& item) {
    return FeedInfo{get<std::int64_t>(item, "id"), meta_of(item)};
  });
  auto constants = table_from_json<ConstantInfo>(
      get_or<json>(document, "constants", json::array()), [&](const json& item) {
        return ConstantInfo{get<std::int64_t>(item, "id"), meta_of(item)};
      });

  GraphDocument result{TraceGraph::from_parts(std::move(root), std::move(nodes), std::move(states),
                                              std::move(feeds), std::move(constants)),
                       {},
                       get_or<json>(document, "stats", json::object())};
  const json region = get_or<json>(document, "region", json::object());
  result.region = {get_or<std::string>(region, "id", ""), get_or<std::string>(region, "name", ""),
                   get_or<std::string>(region, "file", ""),
                   get_or<std::int32_t>(region, "line", 0)};
  result.graph.verify();
  return result;
}

GraphDocument from_json_string(const std::string& text) {
  json document;
  try {
    document = json::parse(text);
  } catch (const json::parse_error& e) {
    bad(std::string("not JSON: ") + e.what());
  }
  return from_json(document);
}

}  // namespace terra::graph
