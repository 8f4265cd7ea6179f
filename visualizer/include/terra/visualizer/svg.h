// A self-contained static SVG of a laid-out view (for exports: no script, no CSS file).
#pragma once

#include <string>

#include "terra/visualizer/layout.h"
#include "terra/visualizer/view.h"

namespace terra::visualizer {

// Fill colour (#rrggbb) for a per-node time heat in [0, 1]; a light grey when unmeasured.
std::string heat_color(const std::optional<double>& heat);

// One <svg> element: clusters, edges (branch paths dashed, the last taken bold), nodes
// coloured by time, fetch and branch marks, and a legend. Text is XML-escaped.
std::string render_svg(const View& view, const Layout& layout);

}  // namespace terra::visualizer
