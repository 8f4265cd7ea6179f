// Static SVG: self-contained, every node and cluster drawn, marks and legend present,
// text escaped.
#include "terra/visualizer/svg.h"

#include <gtest/gtest.h>

#include "test_data.h"

namespace terra::visualizer {
namespace {

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) ++n;
  return n;
}

TEST(RenderSvg, DrawsEveryNodeEdgeAndCluster) {
  View view = view_from_json(testing::small_view());
  std::string svg = render_svg(view, layout_view(view));
  EXPECT_EQ(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
  EXPECT_EQ(svg.substr(svg.size() - 6), "</svg>");
  EXPECT_EQ(count(svg, "<g class=\"tn "), view.nodes.size());
  EXPECT_EQ(count(svg, "class=\"tcluster\""), view.clusters.size());
  EXPECT_EQ(count(svg, "marker-end=\"url(#ta)\""), view.edges.size());
  EXPECT_EQ(count(svg, "stroke-dasharray=\"6,3\""), 2u);  // the two branch paths
  EXPECT_NE(svg.find("10× (last)"), std::string::npos);
  EXPECT_NE(svg.find("fetch: Python waits"), std::string::npos);
  EXPECT_NE(svg.find("branch point"), std::string::npos);
  EXPECT_NE(svg.find("42.0 µs"), std::string::npos);  // legend range
  EXPECT_EQ(svg.find("<script"), std::string::npos);
}

TEST(RenderSvg, EscapesLabels) {
  View view = view_from_json(testing::small_view());
  std::string svg = render_svg(view, layout_view(view));
  EXPECT_NE(svg.find("&lt;sum &amp; co&gt;"), std::string::npos);
  EXPECT_EQ(svg.find("<sum & co>"), std::string::npos);
}

TEST(HeatColor, RunsFromLightToDarkAndGreyWithoutTime) {
  EXPECT_EQ(heat_color(0.0), "#ffffcc");
  EXPECT_EQ(heat_color(1.0), "#800026");
  EXPECT_EQ(heat_color(std::nullopt), "#f4f6f8");
  EXPECT_EQ(heat_color(7.0), heat_color(1.0));  // clamped
}

}  // namespace
}  // namespace terra::visualizer
