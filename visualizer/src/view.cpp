// Reading view and graph JSON into a View (see view.h).
#include "terra/visualizer/view.h"

#include <map>
#include <set>
#include <unordered_set>

namespace terra::visualizer {
namespace {

constexpr double kCharWidth = 7.0;
constexpr double kOpHeight = 26.0;

std::string string_or(const nlohmann::json& obj, const char* key, const std::string& fallback) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  return it->is_string() ? it->get<std::string>() : it->dump();
}

double number_or(const nlohmann::json& obj, const char* key, double fallback) {
  auto it = obj.find(key);
  return (it != obj.end() && it->is_number()) ? it->get<double>() : fallback;
}

bool bool_or(const nlohmann::json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_boolean() && it->get<bool>();
}

// The node id as text: graph JSON uses integers, view JSON strings.
std::string id_text(const nlohmann::json& id) {
  return id.is_string() ? id.get<std::string>() : id.dump();
}

void check_version(const nlohmann::json& doc, int supported, const std::string& format) {
  auto version = doc.find("version");
  if (version == doc.end() || !version->is_number_integer() || version->get<int>() != supported) {
    throw FormatError("'" + format + "' version " +
                      (version == doc.end() ? std::string("(missing)") : version->dump()) +
                      " is not supported: this visualizer reads version " +
                      std::to_string(supported));
  }
}

const nlohmann::json& array_field(const nlohmann::json& doc, const char* key) {
  static const nlohmann::json kEmpty = nlohmann::json::array();
  auto it = doc.find(key);
  if (it == doc.end() || it->is_null()) return kEmpty;
  if (!it->is_array()) throw FormatError(std::string("'") + key + "' must be a list");
  return *it;
}

void check_edge_ends(const View& view) {
  std::unordered_set<std::string> ids;
  for (const auto& n : view.nodes) {
    if (!ids.insert(n.id).second) throw FormatError("duplicate node id '" + n.id + "'");
  }
  for (const auto& e : view.edges) {
    if (!ids.count(e.source) || !ids.count(e.target)) {
      throw FormatError("edge " + e.source + " -> " + e.target + " names a missing node");
    }
  }
}

View read_view(const nlohmann::json& doc) {
  View view;
  for (const auto& n : array_field(doc, "nodes")) {
    if (!n.is_object() || !n.contains("id")) throw FormatError("every node needs an 'id'");
    ViewNode node;
    node.id = id_text(n["id"]);
    node.kind = string_or(n, "kind", "op");
    node.label = string_or(n, "label", node.id);
    node.parent = string_or(n, "parent", "");
    if (!node.parent.empty()) node.parent = "c:" + node.parent;
    node.w = number_or(n, "w", box_width_for(node.label, node.kind != "op"));
    node.h = number_or(n, "h", kOpHeight);
    if (n.contains("heat") && n["heat"].is_number()) node.heat = n["heat"].get<double>();
    node.fetch = bool_or(n, "fetch");
    node.branch = bool_or(n, "branch");
    view.nodes.push_back(std::move(node));
  }
  for (const auto& e : array_field(doc, "edges")) {
    ViewEdge edge;
    edge.source = id_text(e.at("source"));
    edge.target = id_text(e.at("target"));
    edge.kind = string_or(e, "kind", "data");
    edge.last = bool_or(e, "last");
    edge.label = string_or(e, "label", "");
    view.edges.push_back(std::move(edge));
  }
  for (const auto& c : array_field(doc, "clusters")) {
    ViewCluster cluster;
    cluster.id = id_text(c.at("id"));
    cluster.label = string_or(c, "label", cluster.id);
    cluster.parent = string_or(c, "parent", "");
    if (!cluster.parent.empty()) cluster.parent = "c:" + cluster.parent;
    view.clusters.push_back(std::move(cluster));
  }
  auto range = doc.find("time_range_us");
  if (range != doc.end() && range->is_array() && range->size() == 2) {
    view.time_range_us = std::make_pair((*range)[0].get<double>(), (*range)[1].get<double>());
  }
  view.total_nodes = static_cast<std::size_t>(
      number_or(doc, "total_nodes", static_cast<double>(view.nodes.size())));
  return view;
}

// A flat view of a graph JSON: one box per node, no grouping.
View read_graph(const nlohmann::json& doc) {
  View view;
  std::map<std::pair<std::string, std::string>, int> data_edges;
  std::set<std::string> feeds;
  for (const auto& n : array_field(doc, "nodes")) {
    if (!n.is_object() || !n.contains("id")) throw FormatError("every node needs an 'id'");
    ViewNode node;
    node.id = "n" + id_text(n["id"]);
    node.label = string_or(n, "label", string_or(n, "op", node.id));
    node.w = box_width_for(node.label, false);
    node.fetch = bool_or(n, "fetch");
    node.branch = n.contains("succ") && n["succ"].is_array() && n["succ"].size() > 1;
    for (const auto& in : array_field(n, "inputs")) {
      if (in.contains("node")) {
        data_edges[{"n" + id_text(in["node"]), node.id}]++;
      } else if (in.contains("feed")) {
        std::string feed = "feed:" + id_text(in["feed"]);
        feeds.insert(feed);
        data_edges[{feed, node.id}]++;
      }
    }
    view.nodes.push_back(std::move(node));
  }
  for (const auto& feed : feeds) {
    ViewNode node;
    node.id = feed;
    node.kind = "feed";
    node.label = "feed " + feed.substr(5);
    node.w = box_width_for(node.label, false);
    node.h = 24;
    view.nodes.push_back(std::move(node));
  }
  for (const auto& [ends, count] : data_edges) {
    if (ends.first != ends.second) view.edges.push_back({ends.first, ends.second, "data"});
  }
  for (const auto& b : array_field(doc, "branches")) {
    const auto& succ = array_field(b, "succ");
    for (std::size_t j = 0; j < succ.size(); ++j) {
      ViewEdge edge{"n" + id_text(b.at("node")), "n" + id_text(succ[j]), "path"};
      edge.last = b.contains("last") && b["last"].is_number() && b["last"].get<std::size_t>() == j;
      view.edges.push_back(std::move(edge));
    }
  }
  view.total_nodes = view.nodes.size() - feeds.size();
  return view;
}

}  // namespace

double box_width_for(const std::string& label, bool group) {
  // Count code points, not bytes, so "×" or "…" count once.
  std::size_t chars = 0;
  for (unsigned char c : label) chars += (c & 0xC0) != 0x80;
  double width = kCharWidth * static_cast<double>(chars) + (group ? 34.0 : 24.0);
  return group ? width : std::max(56.0, width);
}

View view_from_json(const nlohmann::json& doc) {
  if (!doc.is_object()) throw FormatError("view JSON must be an object");
  std::string format = string_or(doc, "format", "(missing)");
  View view;
  if (format == "terra.view") {
    check_version(doc, kViewVersion, format);
    view = read_view(doc);
  } else if (format == "terra.graph") {
    check_version(doc, kGraphVersion, format);
    view = read_graph(doc);
  } else {
    throw FormatError("unknown format '" + format +
                      "': this visualizer reads 'terra.view' and 'terra.graph' version 1");
  }
  check_edge_ends(view);
  return view;
}

}  // namespace terra::visualizer
