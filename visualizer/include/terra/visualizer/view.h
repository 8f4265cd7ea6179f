// The view the visualizer lays out and draws: boxes, edges and nested clusters.
//
// A view is what terra/widgets/view.py builds from a region's graph JSON for the groups
// currently expanded (format "terra.view", docs/architecture.md "View JSON"). A plain
// graph JSON ("terra.graph" version 1) is also accepted and read as a flat view: one box
// per node, data edges from `inputs`, branch-path edges from `branches`.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace terra::visualizer {

// The input is not a view or graph JSON this library reads; what() says why.
class FormatError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ViewNode {
  std::string id;
  std::string kind = "op";  // op | group | fold | feed
  std::string label;
  std::string parent;          // id of the enclosing cluster, empty at top level
  double w = 56, h = 26;       // box size in px (= Graphviz points)
  std::optional<double> heat;  // per-node time scaled to [0, 1]; none if not measured
  bool fetch = false;
  bool branch = false;
};

struct ViewEdge {
  std::string source, target;
  std::string kind = "data";  // data | path (a branch point's path)
  bool last = false;          // path taken last at its branch point
  std::string label;
};

struct ViewCluster {
  std::string id;
  std::string parent;  // enclosing cluster id, empty at top level
  std::string label;
};

struct View {
  std::vector<ViewNode> nodes;
  std::vector<ViewEdge> edges;
  std::vector<ViewCluster> clusters;
  std::optional<std::pair<double, double>> time_range_us;
  std::size_t total_nodes = 0;  // nodes of the underlying graph
};

// Versions of "terra.view" and "terra.graph" this library reads.
inline constexpr int kViewVersion = 1;
inline constexpr int kGraphVersion = 1;

// Reads a "terra.view" or "terra.graph" JSON document; throws FormatError on an unknown
// format or version (naming the supported one) or on malformed content. Edges whose ends
// are not nodes of the view are rejected.
View view_from_json(const nlohmann::json& doc);

// Box width for a label: fixed-size boxes keep Graphviz from measuring text.
double box_width_for(const std::string& label, bool group);

}  // namespace terra::visualizer
