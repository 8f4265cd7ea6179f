// terra._C.visualizer: Graphviz layout and static SVG of the widget's views (terra::visualizer).
//
// JSON text in, JSON/SVG text out: the Python side (terra/widgets/layout.py) already holds
// the view as JSON, and strings keep this binding free of pybind11 JSON casters. Layout
// releases the GIL: a large view takes Graphviz a while and the kernel keeps serving.
#include <pybind11/pybind11.h>

#include <string>

#include "bindings.h"
#include "terra/visualizer/layout.h"
#include "terra/visualizer/svg.h"
#include "terra/visualizer/view.h"

namespace py = pybind11;

namespace terra::python {
namespace {

nlohmann::json parse_or_raise(const std::string& text) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& err) {
    throw visualizer::FormatError(std::string("view JSON does not parse: ") + err.what());
  }
}

std::string layout_positions(const std::string& view_json) {
  nlohmann::json doc = parse_or_raise(view_json);
  visualizer::View view = visualizer::view_from_json(doc);
  return visualizer::layout_to_json(visualizer::layout_view(view)).dump();
}

std::string render_laid_out_svg(const std::string& laid_out_view_json) {
  nlohmann::json doc = parse_or_raise(laid_out_view_json);
  visualizer::View view = visualizer::view_from_json(doc);
  return visualizer::render_svg(view, visualizer::layout_from_view_json(doc));
}

}  // namespace

void bind_visualizer(py::module_& m) {
  py::module_ v = m.def_submodule("visualizer", "Graphviz layout and static SVG of graph views");
  py::register_exception<visualizer::FormatError>(v, "FormatError", PyExc_ValueError);
  py::register_exception<visualizer::LayoutError>(v, "LayoutError", PyExc_RuntimeError);
  v.def("layout", &layout_positions, py::arg("view_json"), py::call_guard<py::gil_scoped_release>(),
        "Positions (JSON text) of a 'terra.view' or 'terra.graph' JSON text, laid out by "
        "Graphviz dot: {width, height, nodes: {id: [x, y]}, edges: [[[x, y], ...]], "
        "clusters: {id: [x, y, w, h]}}.");
  v.def("render_svg", &render_laid_out_svg, py::arg("laid_out_view_json"),
        py::call_guard<py::gil_scoped_release>(),
        "A self-contained <svg> of a view JSON text whose nodes carry x/y, edges points, "
        "clusters x/y/w/h (what terra.widgets.layout.layout_view returns).");
}

}  // namespace terra::python
