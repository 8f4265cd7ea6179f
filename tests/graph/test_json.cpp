// Graph JSON: the documented schema, exact round trips, and rejection of unknown documents.
#include <gtest/gtest.h>

#include <cmath>

#include "programs.h"
#include "terra/graph/json.h"

namespace terra::graph {
namespace {

using nlohmann::json;
using testing::meta;
using testing::TraceBuilder;
using testing::training_step;
using testing::Value;
using testing::with_lr;
using testing::with_tanh;

const RegionInfo kRegion{"r1", "train.py:42", "train.py", 42};

TraceGraph branched() {
  TraceGraph graph;
  graph.merge(training_step(with_lr(0.1)));
  graph.merge(training_step(with_tanh()));
  graph.merge(training_step(with_lr(0.05)));
  graph.add_time(0, 8.0);
  graph.add_time(0, 9.0);
  return graph;
}

// A record using every kind of argument, input and alias.
Trace every_kind() {
  TraceBuilder b;
  Value x = b.feed(0, meta({2, 3}));
  Value y = b.op("aten::relu", {x});
  OpRecord record;
  record.identity =
      OpIdentity(OperatorName("aten::weird", "out"),
                 {Arg(TensorListArg{{0, TensorListArg::kNoTensor, 1}}), Arg(TensorArg{2}), Arg(),
                  Arg(true), Arg(std::int64_t{-7}), Arg(2.5), Arg(-0.0), Arg(INFINITY), Arg(NAN),
                  Arg("mean"), Arg(IntList{}), Arg(IntList{1, -1}), Arg(DoubleList{}),
                  Arg(DoubleList{0.5, -INFINITY}), Arg(OtherArg{"memory_format:channels_last"})},
                 {{y.ref, y.meta}, {State{4}, meta({3})}, {Constant{2}, meta({1}, "int64")}},
                 /*context=*/5);
  TensorMeta view = meta({3, 2});
  view.strides = {1, 3};
  view.storage_offset = 1;
  view.requires_grad = true;
  view.device = "cuda:1";
  record.outputs = {
      OutputInfo::fresh(meta({2})), {view, AliasKind::kView, 0}, {meta({3}), AliasKind::kSame, 1}};
  record.source = {"model.py", 99};
  record.module_path = "net/block/0";
  record.flags.is_inplace = true;
  record.flags.is_random = true;
  record.flags.warns = true;
  Trace trace = b.take();
  trace.append(std::move(record));  // step 1, after relu
  trace.states.push_back({4, meta({3}), "model.bias"});
  return trace;
}

TEST(Json, TopLevelSchema) {
  TraceGraph graph = branched();
  graph.verify();
  json stats = {{"iterations_traced", 3}, {"iterations_coexecuted", 10}, {"fallbacks", 1}};
  json doc = to_json(graph, kRegion, stats);
  EXPECT_EQ(doc["format"], "terra.graph");
  EXPECT_EQ(doc["version"], 1);
  EXPECT_EQ(doc["region"],
            (json{{"id", "r1"}, {"name", "train.py:42"}, {"file", "train.py"}, {"line", 42}}));
  EXPECT_EQ(doc["stats"], stats);
  EXPECT_EQ(doc["nodes"].size(), graph.size());
  EXPECT_EQ(doc["entry"]["succ"], json::array({0}));
  EXPECT_EQ(doc["entry"]["count"], 3);
  EXPECT_TRUE(to_json(graph, kRegion, nullptr)["stats"].is_object());
}

TEST(Json, NodeFieldsFollowTheContract) {
  TraceGraph graph = branched();
  json doc = to_json(graph, kRegion, json::object());
  const json& mm = doc["nodes"][0];
  EXPECT_EQ(mm["id"], 0);
  EXPECT_EQ(mm["op"], "aten::mm");
  EXPECT_EQ(mm["label"], "mm");
  EXPECT_EQ(mm["namespace"], "model/linear");
  EXPECT_EQ(mm["inputs"][0]["feed"], 0);
  EXPECT_EQ(mm["inputs"][1]["state"], 1);
  EXPECT_EQ(mm["inputs"][1]["shape"], json::array({4, 4}));
  EXPECT_EQ(mm["args"], json::parse(R"([{"input":0},{"input":1}])"));
  EXPECT_EQ(mm["outputs"][0]["shape"], json::array({8, 4}));
  EXPECT_EQ(mm["outputs"][0]["dtype"], "float32");
  EXPECT_EQ(mm["outputs"][0]["device"], "cpu");
  EXPECT_EQ(mm["source"], (json{{"file", "train.py"}, {"line", 10}}));
  EXPECT_EQ(mm["succ"], json::array({1, 5}));
  EXPECT_EQ(mm["fetch"], false);
  EXPECT_EQ(mm["count"], 3);
  EXPECT_DOUBLE_EQ(mm["time_us"].get<double>(), 8.5);
  EXPECT_FALSE(doc["nodes"][1].contains("time_us"));  // never timed
  EXPECT_EQ(doc["nodes"][2]["fetch"], true);          // sum: the loss was printed

  // NodeOutput inputs name the producing node's id (not its step): tanh's sum reads node 5.
  const json& tanh_sum = doc["nodes"][6];
  EXPECT_EQ(tanh_sum["op"], "aten::sum");
  EXPECT_EQ(tanh_sum["inputs"][0]["node"], 5);
  EXPECT_EQ(tanh_sum["inputs"][0]["port"], 0);

  // The generalised learning rate.
  EXPECT_EQ(doc["nodes"][3]["args"][1], (json{{"scalar_feed", "double"}}));
  graph.verify();
}

TEST(Json, BranchesStatesAndFeeds) {
  TraceGraph graph = branched();
  json doc = to_json(graph, kRegion, json::object());
  ASSERT_EQ(doc["branches"].size(), 1u);
  EXPECT_EQ(doc["branches"][0],
            (json{{"node", 0}, {"succ", {1, 5}}, {"counts", {2, 1}}, {"last", 0}}));
  ASSERT_EQ(doc["states"].size(), 1u);
  EXPECT_EQ(doc["states"][0]["id"], 1);
  EXPECT_EQ(doc["states"][0]["shape"], json::array({4, 4}));
  EXPECT_EQ(doc["states"][0]["dtype"], "float32");
  EXPECT_TRUE(doc["states"][0].contains("name"));
  ASSERT_EQ(doc["feeds"].size(), 1u);
  EXPECT_EQ(doc["feeds"][0]["id"], 0);
  EXPECT_EQ(doc["feeds"][0]["shape"], json::array({8, 4}));
  graph.verify();
}

TEST(Json, RoundTripIsExact) {
  TraceGraph graph = branched();
  json stats = {{"iterations_traced", 3}};
  json doc = to_json(graph, kRegion, stats);
  GraphDocument back = from_json(doc);
  back.graph.verify();
  EXPECT_EQ(print(back.graph), print(graph));
  EXPECT_EQ(to_json(back.graph, back.region, back.stats), doc);
  EXPECT_EQ(back.region.name, kRegion.name);
  EXPECT_EQ(back.region.line, 42);
  EXPECT_EQ(back.stats, stats);
  for (NodeId id = 0; id < graph.size(); ++id) {
    EXPECT_EQ(back.graph.node(id).identity, graph.node(id).identity) << "node " << id;
    EXPECT_EQ(back.graph.node(id).identity.hash(), graph.node(id).identity.hash());
    EXPECT_EQ(back.graph.node(id).outputs, graph.node(id).outputs);
  }
}

TEST(Json, RoundTripKeepsEveryArgumentKind) {
  TraceGraph graph;
  graph.merge(every_kind());
  graph.verify();
  std::string text = to_json_string(graph, kRegion, json::object(), 2);
  GraphDocument back = from_json_string(text);
  back.graph.verify();
  EXPECT_EQ(back.graph.node(1).identity, graph.node(1).identity);  // NaN equals by bits
  EXPECT_EQ(back.graph.node(1).outputs, graph.node(1).outputs);
  EXPECT_EQ(back.graph.node(1).flags.is_random, true);
  EXPECT_EQ(back.graph.node(1).flags.warns, true);
  EXPECT_EQ(back.graph.node(0).flags.warns, false);
  EXPECT_EQ(back.graph.node(1).module_path, "net/block/0");
  EXPECT_EQ(back.graph.constants().count(2), 1u);
  EXPECT_EQ(back.graph.states().at(4).name, "model.bias");
  EXPECT_EQ(print(back.graph), print(graph));
  EXPECT_EQ(to_json_string(back.graph, back.region, back.stats, 2), text);
}

TEST(Json, MergedGraphKeepsMatchingAfterARoundTrip) {
  TraceGraph graph = branched();
  GraphDocument back = from_json(to_json(graph, kRegion, json::object()));
  EXPECT_TRUE(back.graph.merge(training_step(with_lr(0.33))).contained);
  EXPECT_TRUE(back.graph.merge(training_step(with_tanh())).contained);
  back.graph.verify();
}

void expect_format_error(const json& doc, const std::string& expected) {
  try {
    from_json(doc);
    ADD_FAILURE() << "accepted: " << doc.dump();
  } catch (const JsonFormatError& error) {
    EXPECT_NE(std::string(error.what()).find(expected), std::string::npos) << error.what();
  }
}

TEST(Json, RejectsUnknownFormatsAndVersions) {
  json doc = to_json(branched(), kRegion, json::object());
  json other = doc;
  other["format"] = "model_explorer";
  expect_format_error(other, "unknown format");
  other = doc;
  other["version"] = 2;
  expect_format_error(other, "supports version 1");
  other = doc;
  other.erase("version");
  expect_format_error(other, "version");
  expect_format_error(json::array(), "not an object");
  EXPECT_THROW(from_json_string("{not json"), JsonFormatError);
}

TEST(Json, RejectsMissingOrIllTypedFields) {
  json doc = to_json(branched(), kRegion, json::object());
  json broken = doc;
  broken["nodes"][2].erase("op");
  expect_format_error(broken, "\"op\"");
  broken = doc;
  broken["nodes"][2]["count"] = "many";
  expect_format_error(broken, "\"count\"");
  broken = doc;
  broken["nodes"][2]["inputs"][0]["node"] = 40;
  expect_format_error(broken, "missing node 40");
  broken = doc;
  broken["nodes"][2]["id"] = 7;
  expect_format_error(broken, "dense");
  broken = doc;
  broken["nodes"][2]["args"].push_back(json{{"mystery", 1}});
  expect_format_error(broken, "unknown argument");
}

TEST(Json, MalformedGraphIsRejectedByTheVerifier) {
  json doc = to_json(branched(), kRegion, json::object());
  doc["nodes"][3]["count"] = 17;
  EXPECT_THROW(from_json(doc), VerifyError);
}

}  // namespace
}  // namespace terra::graph
