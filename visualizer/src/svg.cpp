// Static SVG of a laid-out view (see svg.h); the look matches terra/widgets/svg.py.
#include "terra/visualizer/svg.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace terra::visualizer {
namespace {

// YlOrRd, light to dark (the same stops as the widget and the Python renderer).
constexpr std::array<std::array<int, 3>, 5> kHeatStops = {
    {{255, 255, 204}, {254, 217, 118}, {253, 141, 60}, {227, 26, 28}, {128, 0, 38}}};
constexpr const char* kNoTimeFill = "#f4f6f8";
constexpr double kPad = 8.0;
constexpr double kDarkHeat = 0.6;  // from this heat on, labels are drawn white for contrast
constexpr double kLegendHeight = 26.0;

std::string escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#x27;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

std::string stroke_for(const ViewNode& n) {
  if (n.fetch) return "#c53030";
  if (n.kind == "group") return "#2b6cb0";
  if (n.kind == "fold") return "#6b46c1";
  if (n.kind == "feed") return "#2f855a";
  return "#4a5568";
}

std::string path_data(const std::vector<Point>& pts) {
  if (pts.empty()) return "";
  std::string d = "M" + num(pts[0].x) + "," + num(pts[0].y);
  const std::size_t rest = pts.size() - 1;
  if (rest % 3 == 0) {
    for (std::size_t i = 1; i < pts.size(); i += 3) {
      d += "C" + num(pts[i].x) + "," + num(pts[i].y) + " " + num(pts[i + 1].x) + "," +
           num(pts[i + 1].y) + " " + num(pts[i + 2].x) + "," + num(pts[i + 2].y);
    }
  } else {
    for (std::size_t i = 1; i < pts.size(); ++i) d += "L" + num(pts[i].x) + "," + num(pts[i].y);
  }
  return d;
}

void write_node(std::ostream& out, const ViewNode& n, const Point& c) {
  const double x = c.x - n.w / 2, y = c.y - n.h / 2;
  out << "<g class=\"tn tn-" << escape(n.kind) << "\" data-id=\"" << escape(n.id) << "\">";
  if (n.kind == "feed") {
    out << "<ellipse cx=\"" << num(c.x) << "\" cy=\"" << num(c.y) << "\" rx=\"" << num(n.w / 2)
        << "\" ry=\"" << num(n.h / 2) << "\" fill=\"#e6fffa\" stroke=\"#2f855a\"/>";
  } else {
    const bool boxy = n.kind == "group" || n.kind == "fold";
    out << "<rect x=\"" << num(x) << "\" y=\"" << num(y) << "\" width=\"" << num(n.w)
        << "\" height=\"" << num(n.h) << "\" rx=\"" << (boxy ? 8 : 3) << "\" fill=\""
        << heat_color(n.heat) << "\" stroke=\"" << stroke_for(n) << "\" stroke-width=\""
        << (n.fetch ? "2.5" : "1.2") << "\""
        << (n.kind == "fold" ? " stroke-dasharray=\"5,3\"" : "") << "/>";
  }
  const bool boxy = n.kind == "group" || n.kind == "fold";
  const bool dark = n.heat && *n.heat >= kDarkHeat;
  out << "<text x=\"" << num(c.x) << "\" y=\"" << num(c.y + 4) << "\" text-anchor=\"middle\""
      << (dark ? " fill=\"#fff\"" : "") << ">" << (boxy ? "\u25b8 " : "") << escape(n.label)
      << "</text>";
  if (n.branch) {
    out << "<path d=\"M" << num(x + n.w - 7) << "," << num(y - 6)
        << " l6,6 l-6,6 l-6,-6 z\" fill=\"#dd6b20\"><title>branch point</title></path>";
  }
  if (n.fetch) {
    out << "<circle cx=\"" << num(x + 4) << "\" cy=\"" << num(y + 4)
        << "\" r=\"4\" fill=\"#c53030\"><title>fetch: Python waits for this value</title>"
           "</circle>";
  }
  out << "</g>";
}

void write_edge(std::ostream& out, const ViewEdge& e, const std::vector<Point>& pts) {
  const std::string d = path_data(pts);
  if (d.empty()) return;
  if (e.kind == "path") {
    out << "<path d=\"" << d << "\" fill=\"none\" stroke=\"" << (e.last ? "#dd6b20" : "#ed8936")
        << "\" stroke-width=\"" << (e.last ? "3" : "1.5")
        << "\" stroke-dasharray=\"6,3\" marker-end=\"url(#ta)\"/>";
    if (!e.label.empty()) {
      const Point& mid = pts[pts.size() / 2];
      out << "<text x=\"" << num(mid.x + 4) << "\" y=\"" << num(mid.y)
          << "\" class=\"tl\" fill=\"#c05621\">" << escape(e.label) << (e.last ? " (last)" : "")
          << "</text>";
    }
    return;
  }
  out << "<path d=\"" << d
      << "\" fill=\"none\" stroke=\"#a0aec0\" stroke-width=\"1\" marker-end=\"url(#ta)\"/>";
}

void write_legend(std::ostream& out, const View& view, double top) {
  out << "<g class=\"tlegend\" transform=\"translate(8," << num(top) << ")\">"
      << "<rect x=\"0\" y=\"0\" width=\"12\" height=\"12\" fill=\"none\" stroke=\"#c53030\" "
         "stroke-width=\"2.5\"/><text x=\"16\" y=\"10\">fetch</text>"
      << "<path d=\"M74,0 l6,6 l-6,6 l-6,-6 z\" fill=\"#dd6b20\"/>"
         "<text x=\"84\" y=\"10\">branch</text>"
      << "<ellipse cx=\"150\" cy=\"6\" rx=\"6\" ry=\"5\" fill=\"#e6fffa\" stroke=\"#2f855a\"/>"
         "<text x=\"160\" y=\"10\">feed</text>";
  double x = 210;
  if (view.time_range_us) {
    out << "<text x=\"" << num(x) << "\" y=\"10\">time " << num(view.time_range_us->first)
        << " \u00b5s</text>";
    x += 80;
    for (int i = 0; i < 10; ++i) {
      out << "<rect x=\"" << num(x + i * 8) << "\" y=\"0\" width=\"8\" height=\"12\" fill=\""
          << heat_color(i / 9.0) << "\"/>";
    }
    out << "<text x=\"" << num(x + 84) << "\" y=\"10\">" << num(view.time_range_us->second)
        << " \u00b5s</text>";
  } else {
    out << "<text x=\"" << num(x) << "\" y=\"10\">no per-node times yet</text>";
  }
  out << "</g>";
}

}  // namespace

std::string heat_color(const std::optional<double>& heat) {
  if (!heat) return kNoTimeFill;
  const double t = std::clamp(*heat, 0.0, 1.0) * (kHeatStops.size() - 1);
  const std::size_t i = std::min<std::size_t>(static_cast<std::size_t>(t), kHeatStops.size() - 2);
  const double f = t - static_cast<double>(i);
  char buf[8];
  int rgb[3];
  for (int k = 0; k < 3; ++k) {
    rgb[k] = static_cast<int>(
        std::lround(kHeatStops[i][k] + (kHeatStops[i + 1][k] - kHeatStops[i][k]) * f));
  }
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
  return buf;
}

std::string render_svg(const View& view, const Layout& layout) {
  const double total_w = std::max(layout.width + 2 * kPad, 420.0);
  const double total_h = layout.height + 2 * kPad + kLegendHeight;
  std::ostringstream out;
  out << "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"terra-graph-svg\" width=\""
      << std::lround(total_w) << "\" height=\"" << std::lround(total_h) << "\" viewBox=\"0 0 "
      << std::lround(total_w) << " " << std::lround(total_h)
      << "\" style=\"font: 12px sans-serif; max-width: 100%; height: auto\">"
      << "<defs><marker id=\"ta\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"6\" "
         "markerHeight=\"6\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" "
         "fill=\"#718096\"/></marker></defs>"
      << "<style>.tl{font-size:11px}.tc{font-size:11px;fill:#2b6cb0}</style>"
      << "<g transform=\"translate(" << num(kPad) << "," << num(kPad) << ")\">";
  for (const auto& c : view.clusters) {
    auto it = layout.clusters.find(c.id);
    if (it == layout.clusters.end()) continue;
    const Box& b = it->second;
    out << "<g class=\"tcluster\" data-id=\"" << escape(c.id) << "\"><rect x=\"" << num(b.x)
        << "\" y=\"" << num(b.y) << "\" width=\"" << num(b.w) << "\" height=\"" << num(b.h)
        << "\" rx=\"6\" fill=\"#ebf4ff\" fill-opacity=\"0.35\" stroke=\"#90cdf4\"/>"
        << "<text class=\"tc\" x=\"" << num(b.x + 6) << "\" y=\"" << num(b.y + 12) << "\">\u25be "
        << escape(c.label) << "</text></g>";
  }
  for (std::size_t i = 0; i < view.edges.size() && i < layout.edges.size(); ++i) {
    write_edge(out, view.edges[i], layout.edges[i]);
  }
  for (const auto& n : view.nodes) {
    auto it = layout.nodes.find(n.id);
    if (it != layout.nodes.end()) write_node(out, n, it->second);
  }
  out << "</g>";
  write_legend(out, view, layout.height + 2 * kPad + 4);
  out << "</svg>";
  return out.str();
}

}  // namespace terra::visualizer
