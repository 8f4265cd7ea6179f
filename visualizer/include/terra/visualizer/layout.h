// Graphviz (libgvc, the `dot` engine) layout of a view.
#pragma once

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "terra/visualizer/view.h"

namespace terra::visualizer {

// Graphviz could not lay the view out.
class LayoutError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Point {
  double x = 0, y = 0;
};

struct Box {
  double x = 0, y = 0, w = 0, h = 0;  // top-left corner and size
};

// Positions in px, origin top left: node centres, edge splines (first point then three
// cubic Bézier control points per segment, one list per view edge, same order) and
// cluster boxes.
struct Layout {
  double width = 0, height = 0;
  std::unordered_map<std::string, Point> nodes;
  std::vector<std::vector<Point>> edges;
  std::unordered_map<std::string, Box> clusters;
};

// Lays out `view` with the dot engine (top to bottom, expanded groups as clusters).
// Thread-safe (Graphviz itself is not: calls are serialised). Throws LayoutError.
Layout layout_view(const View& view);

// The layout as JSON: {"width","height","nodes":{id:[x,y]},"edges":[[[x,y],...]],
// "clusters":{id:[x,y,w,h]}} (what terra.widgets.layout.merge_positions reads).
nlohmann::json layout_to_json(const Layout& layout);

// Reads positions already merged into a laid-out view JSON (x/y on nodes, points on
// edges, x/y/w/h on clusters, width/height); throws FormatError if any are missing.
Layout layout_from_view_json(const nlohmann::json& laid_out_view);

}  // namespace terra::visualizer
