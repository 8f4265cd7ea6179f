"""Layout backends (dot program, libgvc via terra._C) and the static SVG renderers."""
import json
import re

import pytest

from terra.widgets import layout, svg
from terra.widgets.view import GraphModel

from viz_helpers import available_backends


def laid_out(graph, backend, expand=()):
    model = GraphModel(graph)
    state = model.initial_state()
    for path in expand:
        state.toggle(path)
    return layout.layout_view(model.build_view(state), backend=backend)


@pytest.mark.parametrize("backend", available_backends())
def test_every_node_inside_drawing_and_clusters_enclose_members(graph, backend):
    view = laid_out(graph, backend, expand=["model/layers"])
    assert view["width"] > 0 and view["height"] > 0
    for n in view["nodes"]:
        assert -0.5 <= n["x"] - n["w"] / 2 and n["x"] + n["w"] / 2 <= view["width"] + 0.5
        assert -0.5 <= n["y"] - n["h"] / 2 and n["y"] + n["h"] / 2 <= view["height"] + 0.5
    boxes = {c["path"]: c for c in view["clusters"]}
    for n in view["nodes"]:
        if n["parent"]:
            c = boxes[n["parent"]]
            assert c["x"] <= n["x"] <= c["x"] + c["w"] and c["y"] <= n["y"] <= c["y"] + c["h"]
    for e in view["edges"]:
        assert len(e["points"]) >= 4 and (len(e["points"]) - 1) % 3 == 0


def test_backends_agree_when_both_exist(graph):
    backends = available_backends()
    if len(backends) < 2:
        pytest.skip(f"only {backends} here: terra._C is built without the visualizer")
    a, b = (laid_out(graph, name) for name in backends)
    assert (a["width"], a["height"]) == (b["width"], b["height"])
    # `dot -Tjson0` prints rounded centres, and the text round trip of the DOT program shifts
    # a few boxes by a point or two; sizes and ranks (y) agree exactly.
    for n, m in zip(a["nodes"], b["nodes"]):
        assert n["id"] == m["id"]
        assert n["x"] == pytest.approx(m["x"], abs=4.0) and n["y"] == pytest.approx(m["y"], abs=1.0)
    assert {c["id"]: (c["w"], c["h"]) for c in a["clusters"]} == {
        c["id"]: (c["w"], c["h"]) for c in b["clusters"]}


def test_empty_view_needs_no_graphviz():
    view = layout.layout_view({"nodes": [], "edges": [], "clusters": []}, backend="none")
    assert view["width"] == 0


def test_dot_text_nests_clusters_and_fixes_box_sizes(graph):
    model = GraphModel(graph)
    view = model.build_view(model.initial_state())
    dot = layout.to_dot(view)
    assert dot.count("subgraph") == len(view["clusters"])
    assert dot.count("fixedsize=true") == 1 and dot.count("width=") == len(view["nodes"])


def test_python_svg_draws_every_node_edge_cluster_and_legend(graph):
    view = laid_out(graph, available_backends()[0])
    out = svg.render_graph_svg(view)
    assert out.startswith('<svg xmlns="http://www.w3.org/2000/svg"') and out.endswith("</svg>")
    assert len(re.findall(r'<g class="tn ', out)) == len(view["nodes"])
    assert out.count('class="tcluster"') == len(view["clusters"])
    assert out.count('marker-end="url(#ta)"') == len(view["edges"])
    assert "<script" not in out and "fetch" in out and "µs" in out


def test_native_svg_matches_python_structure(graph):
    if layout._native() is None:
        pytest.skip("terra._C is built without the visualizer")
    view = laid_out(graph, "libgvc")
    native = svg.native_graph_svg(view)
    python = svg.render_graph_svg(view)
    for marker in ('<g class="tn ', 'class="tcluster"', 'marker-end="url(#ta)"'):
        assert native.count(marker) == python.count(marker), marker


def test_heat_colors_match_the_front_end_scale():
    js = (layout.__file__.rsplit("/", 1)[0] + "/static/graph.js")
    text = open(js, encoding="utf-8").read()
    stops = re.search(r"HEAT_STOPS = (\[.*?\]\]);", text).group(1)
    assert json.loads(stops) == [list(s) for s in svg._HEAT_STOPS]
    assert svg.heat_color(0) == "#ffffcc" and svg.heat_color(None) == svg.NO_TIME_FILL
