// Graphviz layout: every node placed inside the drawing, clusters enclosing their nodes,
// edges running from source to target, top to bottom.
#include "terra/visualizer/layout.h"

#include <gtest/gtest.h>

#include "test_data.h"

namespace terra::visualizer {
namespace {

bool inside(const Box& b, const Point& p) {
  return p.x >= b.x && p.x <= b.x + b.w && p.y >= b.y && p.y <= b.y + b.h;
}

TEST(LayoutView, PlacesEveryNodeInsideTheBoundingBox) {
  View view = view_from_json(testing::small_view());
  Layout layout = layout_view(view);
  ASSERT_EQ(layout.nodes.size(), view.nodes.size());
  EXPECT_GT(layout.width, 0);
  EXPECT_GT(layout.height, 0);
  for (const auto& n : view.nodes) {
    const Point& p = layout.nodes.at(n.id);
    EXPECT_GE(p.x - n.w / 2, -0.5) << n.id;
    EXPECT_LE(p.x + n.w / 2, layout.width + 0.5) << n.id;
    EXPECT_GE(p.y - n.h / 2, -0.5) << n.id;
    EXPECT_LE(p.y + n.h / 2, layout.height + 0.5) << n.id;
  }
}

TEST(LayoutView, ClustersEncloseTheirNodesAndNest) {
  View view = view_from_json(testing::small_view());
  Layout layout = layout_view(view);
  const Box& model = layout.clusters.at("c:model");
  const Box& encoder = layout.clusters.at("c:model/encoder");
  EXPECT_TRUE(inside(encoder, layout.nodes.at("n0")));
  EXPECT_TRUE(inside(encoder, layout.nodes.at("n1")));
  EXPECT_TRUE(inside(model, layout.nodes.at("g:model/head")));
  EXPECT_TRUE(inside(model, {encoder.x + 1, encoder.y + 1}));
  EXPECT_FALSE(inside(model, layout.nodes.at("n9")));
}

TEST(LayoutView, EdgesAreBezierSplinesFromSourceToTarget) {
  View view = view_from_json(testing::small_view());
  Layout layout = layout_view(view);
  ASSERT_EQ(layout.edges.size(), view.edges.size());
  for (std::size_t i = 0; i < view.edges.size(); ++i) {
    const auto& pts = layout.edges[i];
    ASSERT_GE(pts.size(), 4u) << i;
    EXPECT_EQ((pts.size() - 1) % 3, 0u) << i;
    const Point& s = layout.nodes.at(view.edges[i].source);
    const Point& t = layout.nodes.at(view.edges[i].target);
    // Top to bottom: the spline starts nearer its source and ends nearer its target.
    EXPECT_LT(std::abs(pts.front().y - s.y), std::abs(pts.front().y - t.y)) << i;
    EXPECT_LT(std::abs(pts.back().y - t.y), std::abs(pts.back().y - s.y)) << i;
  }
}

TEST(LayoutView, EmptyViewHasEmptyLayout) {
  Layout layout = layout_view(View{});
  EXPECT_TRUE(layout.nodes.empty());
  EXPECT_EQ(layout.width, 0);
}

TEST(LayoutJson, RoundTripsThroughAMergedView) {
  auto doc = testing::small_view();
  View view = view_from_json(doc);
  Layout layout = layout_view(view);
  nlohmann::json positions = layout_to_json(layout);
  // Merge the way terra.widgets.layout.merge_positions does, then read back.
  doc["width"] = positions["width"];
  doc["height"] = positions["height"];
  for (auto& n : doc["nodes"]) {
    n["x"] = positions["nodes"][n["id"].get<std::string>()][0];
    n["y"] = positions["nodes"][n["id"].get<std::string>()][1];
  }
  for (std::size_t i = 0; i < doc["edges"].size(); ++i) {
    doc["edges"][i]["points"] = positions["edges"][i];
  }
  for (auto& c : doc["clusters"]) {
    auto box = positions["clusters"][c["id"].get<std::string>()];
    c["x"] = box[0];
    c["y"] = box[1];
    c["w"] = box[2];
    c["h"] = box[3];
  }
  Layout back = layout_from_view_json(doc);
  EXPECT_DOUBLE_EQ(back.nodes.at("n1").x, layout.nodes.at("n1").x);
  EXPECT_DOUBLE_EQ(back.clusters.at("c:model").h, layout.clusters.at("c:model").h);
  EXPECT_EQ(back.edges[2].size(), layout.edges[2].size());
}

TEST(LayoutJson, MissingPositionsIsAFormatError) {
  EXPECT_THROW(layout_from_view_json(testing::small_view()), FormatError);
}

}  // namespace
}  // namespace terra::visualizer
