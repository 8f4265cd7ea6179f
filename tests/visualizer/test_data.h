// Small view and graph JSON documents shared by the visualizer tests.
#pragma once

#include <nlohmann/json.hpp>

namespace terra::visualizer::testing {

// A view with a cluster (model/encoder), a collapsed group, a fold, a feed, a fetch,
// a branch point whose two paths are edges of kind "path".
inline nlohmann::json small_view() {
  return nlohmann::json::parse(R"json({
    "format": "terra.view", "version": 1, "total_nodes": 40,
    "nodes": [
      {"id": "feed:0", "kind": "feed", "label": "feed 0 [32]", "w": 100, "h": 24},
      {"id": "n0", "kind": "op", "label": "addmm", "parent": "model/encoder", "w": 80,
       "h": 26, "heat": 0.5},
      {"id": "n1", "kind": "op", "label": "relu", "parent": "model/encoder", "w": 60,
       "h": 26, "heat": 1.0, "fetch": true, "branch": true},
      {"id": "g:model/head", "kind": "group", "label": "head  (3 ops)", "parent": "model",
       "w": 130, "h": 34},
      {"id": "f:model/layers/0..3", "kind": "fold", "label": "0…3  ×4", "parent": "model",
       "w": 100, "h": 34},
      {"id": "n9", "kind": "op", "label": "<sum & co>", "w": 90, "h": 26}
    ],
    "edges": [
      {"source": "feed:0", "target": "n0", "kind": "data"},
      {"source": "n0", "target": "n1", "kind": "data"},
      {"source": "n1", "target": "f:model/layers/0..3", "kind": "path", "last": true,
       "label": "10×"},
      {"source": "n1", "target": "g:model/head", "kind": "path", "last": false, "label": "2×"},
      {"source": "f:model/layers/0..3", "target": "n9", "kind": "data"}
    ],
    "clusters": [
      {"id": "c:model/encoder", "path": "model/encoder", "label": "encoder", "parent": "model"},
      {"id": "c:model", "path": "model", "label": "model", "parent": null}
    ],
    "time_range_us": [1.5, 42.0]
  })json");
}

// A graph JSON ("terra.graph" v1) as the engine writes it: a chain with a branch.
inline nlohmann::json small_graph() {
  return nlohmann::json::parse(R"json({
    "format": "terra.graph", "version": 1,
    "region": {"id": "r1", "name": "train.py:42", "file": "train.py", "line": 42},
    "nodes": [
      {"id": 0, "op": "aten::addmm", "label": "addmm", "namespace": "model/fc",
       "inputs": [{"feed": 0}, {"state": 1}], "succ": [1], "fetch": false},
      {"id": 1, "op": "aten::relu", "label": "relu", "namespace": "model",
       "inputs": [{"node": 0, "port": 0}], "succ": [2, 3], "fetch": false},
      {"id": 2, "op": "aten::sum", "label": "sum", "namespace": "",
       "inputs": [{"node": 1, "port": 0}], "succ": [], "fetch": true},
      {"id": 3, "op": "aten::mean", "label": "mean", "namespace": "",
       "inputs": [{"node": 1, "port": 0}], "succ": [], "fetch": true}
    ],
    "branches": [{"node": 1, "succ": [2, 3], "counts": [5, 1], "last": 1}],
    "states": [], "feeds": [{"id": 0, "shape": [4, 8], "dtype": "float32"}]
  })json");
}

}  // namespace terra::visualizer::testing
