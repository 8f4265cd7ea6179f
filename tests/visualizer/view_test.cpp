// Reading view and graph JSON: accepted shapes and the errors for bad input.
#include "terra/visualizer/view.h"

#include <gtest/gtest.h>

#include "test_data.h"

namespace terra::visualizer {
namespace {

TEST(ViewFromJson, ReadsViewNodesEdgesClusters) {
  View view = view_from_json(testing::small_view());
  EXPECT_EQ(view.nodes.size(), 6u);
  EXPECT_EQ(view.edges.size(), 5u);
  EXPECT_EQ(view.clusters.size(), 2u);
  EXPECT_EQ(view.total_nodes, 40u);
  EXPECT_EQ(view.nodes[1].parent, "c:model/encoder");
  EXPECT_EQ(view.clusters[0].parent, "c:model");
  EXPECT_TRUE(view.clusters[1].parent.empty());
  EXPECT_TRUE(view.nodes[2].fetch);
  EXPECT_TRUE(view.nodes[2].branch);
  ASSERT_TRUE(view.time_range_us.has_value());
  EXPECT_DOUBLE_EQ(view.time_range_us->second, 42.0);
}

TEST(ViewFromJson, ReadsGraphJsonAsFlatView) {
  View view = view_from_json(testing::small_graph());
  EXPECT_EQ(view.total_nodes, 4u);
  EXPECT_EQ(view.nodes.size(), 5u);  // 4 ops + the feed
  int paths = 0, last = 0;
  for (const auto& e : view.edges) {
    paths += e.kind == "path";
    last += e.last;
  }
  EXPECT_EQ(paths, 2);
  EXPECT_EQ(last, 1);
  EXPECT_TRUE(view.nodes[1].branch);
  EXPECT_TRUE(view.nodes[2].fetch);
}

TEST(ViewFromJson, RejectsUnknownFormat) {
  auto doc = testing::small_view();
  doc["format"] = "tensorboard.graph";
  try {
    view_from_json(doc);
    FAIL() << "expected FormatError";
  } catch (const FormatError& err) {
    EXPECT_NE(std::string(err.what()).find("unknown format 'tensorboard.graph'"),
              std::string::npos);
  }
}

TEST(ViewFromJson, RejectsOlderVersionAndNamesSupportedOne) {
  auto doc = testing::small_graph();
  doc["version"] = 0;
  try {
    view_from_json(doc);
    FAIL() << "expected FormatError";
  } catch (const FormatError& err) {
    EXPECT_NE(std::string(err.what()).find("reads version 1"), std::string::npos) << err.what();
  }
}

TEST(ViewFromJson, RejectsEdgeToMissingNode) {
  auto doc = testing::small_view();
  doc["edges"].push_back({{"source", "n0"}, {"target", "nowhere"}});
  EXPECT_THROW(view_from_json(doc), FormatError);
}

TEST(ViewFromJson, EmptyGraphGivesEmptyView) {
  View view = view_from_json(nlohmann::json{
      {"format", "terra.graph"}, {"version", 1}, {"nodes", nlohmann::json::array()}});
  EXPECT_TRUE(view.nodes.empty());
  EXPECT_TRUE(view.edges.empty());
}

TEST(BoxWidth, CountsCodePointsNotBytes) {
  EXPECT_DOUBLE_EQ(box_width_for("0…3  ×4", true), box_width_for("0.3  x4", true));
  EXPECT_DOUBLE_EQ(box_width_for("ab", false), 56.0);  // the minimum op box
}

}  // namespace
}  // namespace terra::visualizer
