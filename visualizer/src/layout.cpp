// Graphviz layout through libgvc/libcgraph (see layout.h).
#include "terra/visualizer/layout.h"

#include <graphviz/gvc.h>

#include <cmath>
#include <cstdio>
#include <memory>
#include <mutex>

namespace terra::visualizer {
namespace {

constexpr double kPointsPerInch = 72.0;

// Graph-wide settings; terra/widgets/layout.py GRAPH_ATTRS holds the same values. The
// nslimit pair bounds network-simplex passes, which otherwise took 20+ s on views with
// long edges (bench/visualizer_layout.py).
const std::pair<const char*, const char*> kGraphAttrs[] = {
    {"rankdir", "TB"}, {"nodesep", "0.25"}, {"ranksep", "0.35"}, {"splines", "true"},
    {"nslimit", "2"},  {"nslimit1", "2"},   {"mclimit", "0.5"},
};
constexpr const char* kClusterMargin = "16";

// Graphviz keeps global state: one context for the process, one layout at a time.
std::mutex& graphviz_mutex() {
  static std::mutex mutex;
  return mutex;
}

GVC_t* graphviz_context() {
  static GVC_t* context = gvContext();
  return context;
}

char* mut(const std::string& s) { return const_cast<char*>(s.c_str()); }
char* mut(const char* s) { return const_cast<char*>(s); }

std::string inches(double px) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", px / kPointsPerInch);
  return buf;
}

// Owns an Agraph_t and frees its layout and itself in the right order.
struct GraphHandle {
  Agraph_t* graph = nullptr;
  bool laid_out = false;
  ~GraphHandle() {
    if (laid_out) gvFreeLayout(graphviz_context(), graph);
    if (graph) agclose(graph);
  }
};

void declare_attributes(Agraph_t* g) {
  for (const auto& [name, value] : kGraphAttrs) agattr(g, AGRAPH, mut(name), mut(value));
  agattr(g, AGRAPH, mut("margin"), mut(""));
  agattr(g, AGNODE, mut("shape"), mut("box"));
  agattr(g, AGNODE, mut("fixedsize"), mut("true"));
  agattr(g, AGNODE, mut("label"), mut(""));
  agattr(g, AGNODE, mut("width"), mut("0.75"));
  agattr(g, AGNODE, mut("height"), mut("0.5"));
  agattr(g, AGEDGE, mut("arrowhead"), mut("none"));
}

// Creates clusters and nodes in the order terra/widgets/layout.py writes DOT text (a
// parent's nodes, then its clusters, depth first), so both backends give one layout.
class GraphBuilder {
 public:
  GraphBuilder(Agraph_t* root, const View& view) : root_(root) {
    for (const auto& n : view.nodes) nodes_by_parent_[n.parent].push_back(&n);
    for (const auto& c : view.clusters) clusters_by_parent_[c.parent].push_back(&c);
  }

  // Builds everything under the root; throws FormatError for a node in an unknown cluster.
  void build() {
    emit("", root_);
    for (const auto& [parent, list] : nodes_by_parent_) {
      if (!parent.empty() && !clusters.count(parent)) {
        throw FormatError("node '" + list.front()->id + "' names unknown cluster '" + parent + "'");
      }
    }
  }

  std::unordered_map<std::string, Agnode_t*> nodes;
  std::unordered_map<std::string, Agraph_t*> clusters;

 private:
  void emit(const std::string& parent, Agraph_t* owner) {
    if (auto it = nodes_by_parent_.find(parent); it != nodes_by_parent_.end()) {
      for (const ViewNode* n : it->second) {
        Agnode_t* node = agnode(owner, mut(n->id), 1);
        agset(node, mut("width"), mut(inches(n->w)));
        agset(node, mut("height"), mut(inches(n->h)));
        nodes[n->id] = node;
      }
    }
    if (auto it = clusters_by_parent_.find(parent); it != clusters_by_parent_.end()) {
      for (const ViewCluster* c : it->second) {
        Agraph_t* sub = agsubg(owner, mut("cluster_" + c->id), 1);
        agset(sub, mut("margin"), mut(kClusterMargin));
        clusters[c->id] = sub;
        emit(c->id, sub);
      }
    }
  }

  Agraph_t* root_;
  std::unordered_map<std::string, std::vector<const ViewNode*>> nodes_by_parent_;
  std::unordered_map<std::string, std::vector<const ViewCluster*>> clusters_by_parent_;
};

std::vector<Point> edge_points(Agedge_t* e, double height) {
  std::vector<Point> points;
  splines* spl = ED_spl(e);
  if (spl == nullptr || spl->size == 0) return points;
  const bezier& bz = spl->list[0];
  points.reserve(bz.size);
  for (int i = 0; i < bz.size; ++i) points.push_back({bz.list[i].x, height - bz.list[i].y});
  return points;
}

}  // namespace

Layout layout_view(const View& view) {
  Layout layout;
  layout.edges.resize(view.edges.size());
  if (view.nodes.empty()) return layout;
  std::lock_guard<std::mutex> lock(graphviz_mutex());
  GraphHandle handle;
  handle.graph = agopen(mut("terra"), Agdirected, nullptr);
  Agraph_t* g = handle.graph;
  declare_attributes(g);
  GraphBuilder builder(g, view);
  builder.build();
  const auto& nodes = builder.nodes;
  const auto& clusters = builder.clusters;
  std::vector<Agedge_t*> edges;
  edges.reserve(view.edges.size());
  for (std::size_t i = 0; i < view.edges.size(); ++i) {
    const auto& e = view.edges[i];
    edges.push_back(
        agedge(g, nodes.at(e.source), nodes.at(e.target), mut("e" + std::to_string(i)), 1));
  }
  if (gvLayout(graphviz_context(), g, "dot") != 0) {
    throw LayoutError("Graphviz dot layout failed");
  }
  handle.laid_out = true;

  const boxf bb = GD_bb(g);
  layout.width = bb.UR.x - bb.LL.x;
  layout.height = bb.UR.y - bb.LL.y;
  const double top = bb.UR.y;
  for (const auto& [id, node] : nodes) {
    layout.nodes[id] = {ND_coord(node).x - bb.LL.x, top - ND_coord(node).y};
  }
  for (std::size_t i = 0; i < edges.size(); ++i) {
    layout.edges[i] = edge_points(edges[i], top);
    for (auto& p : layout.edges[i]) p.x -= bb.LL.x;
  }
  for (const auto& [id, sub] : clusters) {
    const boxf cb = GD_bb(sub);
    layout.clusters[id] = {cb.LL.x - bb.LL.x, top - cb.UR.y, cb.UR.x - cb.LL.x, cb.UR.y - cb.LL.y};
  }
  return layout;
}

namespace {

// Two decimals are plenty for px and keep the JSON sent to the browser small.
double round2(double v) { return std::round(v * 100.0) / 100.0; }

}  // namespace

nlohmann::json layout_to_json(const Layout& layout) {
  nlohmann::json out;
  out["width"] = layout.width;
  out["height"] = layout.height;
  out["nodes"] = nlohmann::json::object();
  for (const auto& [id, p] : layout.nodes) out["nodes"][id] = {round2(p.x), round2(p.y)};
  out["edges"] = nlohmann::json::array();
  for (const auto& pts : layout.edges) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& p : pts) list.push_back({round2(p.x), round2(p.y)});
    out["edges"].push_back(std::move(list));
  }
  out["clusters"] = nlohmann::json::object();
  for (const auto& [id, b] : layout.clusters) {
    out["clusters"][id] = {round2(b.x), round2(b.y), round2(b.w), round2(b.h)};
  }
  return out;
}

Layout layout_from_view_json(const nlohmann::json& doc) {
  Layout layout;
  try {
    layout.width = doc.value("width", 0.0);
    layout.height = doc.value("height", 0.0);
    for (const auto& n : doc.at("nodes")) {
      std::string id = n.at("id").is_string() ? n["id"].get<std::string>() : n["id"].dump();
      layout.nodes[id] = {n.at("x").get<double>(), n.at("y").get<double>()};
    }
    for (const auto& e : doc.value("edges", nlohmann::json::array())) {
      std::vector<Point> pts;
      for (const auto& p : e.value("points", nlohmann::json::array())) {
        pts.push_back({p.at(0).get<double>(), p.at(1).get<double>()});
      }
      layout.edges.push_back(std::move(pts));
    }
    for (const auto& c : doc.value("clusters", nlohmann::json::array())) {
      layout.clusters[c.at("id").get<std::string>()] = {
          c.at("x").get<double>(), c.at("y").get<double>(), c.at("w").get<double>(),
          c.at("h").get<double>()};
    }
  } catch (const nlohmann::json::exception& err) {
    throw FormatError(std::string("laid-out view lacks positions: ") + err.what());
  }
  return layout;
}

}  // namespace terra::visualizer
