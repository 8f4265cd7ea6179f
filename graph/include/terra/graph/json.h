// Graph JSON (docs/architecture.md "Graph JSON"): format "terra.graph", version 1.
// Written for terra.graph(), the visualizer and the widget; read back for tests and tools.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "terra/graph/trace_graph.h"

namespace terra::graph {

inline constexpr const char* kGraphJsonFormat = "terra.graph";
inline constexpr int kGraphJsonVersion = 1;

// The region a graph belongs to.
struct RegionInfo {
  std::string id;    // "r1"
  std::string name;  // "train.py:42"
  std::string file;
  std::int32_t line = 0;
};

// Thrown by from_json for a document that is not a readable terra.graph version 1.
class JsonFormatError : public std::runtime_error {
 public:
  explicit JsonFormatError(const std::string& message) : std::runtime_error(message) {}
};

// The Graph JSON document of `graph`. `stats` (a JSON object, e.g. iterations_traced,
// iterations_coexecuted, fallbacks) is copied into "stats" verbatim; null gives {}.
nlohmann::json to_json(const TraceGraph& graph, const RegionInfo& region,
                       const nlohmann::json& stats);
// Same, serialised (compact when indent < 0).
std::string to_json_string(const TraceGraph& graph, const RegionInfo& region,
                           const nlohmann::json& stats, int indent = -1);

// What from_json reads back.
struct GraphDocument {
  TraceGraph graph;
  RegionInfo region;
  nlohmann::json stats;  // the "stats" object as written
};

// Reads a document written by to_json. Throws JsonFormatError for an unknown format, a
// version other than 1, or a missing/ill-typed field; the graph is verified (VerifyError).
GraphDocument from_json(const nlohmann::json& document);
// Same, from text.
GraphDocument from_json_string(const std::string& text);

}  // namespace terra::graph
