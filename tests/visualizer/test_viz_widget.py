"""GraphWidget in the kernel process: bundles, front-end requests, refresh, bad input."""
import copy

import pytest

from terra.widgets import GraphWidget
from terra.widgets import layout
from terra.widgets.synthetic import transformer_graph

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def bundle_of(widget):
    data = widget._repr_mimebundle_()
    return data[0] if isinstance(data, tuple) else data


def test_bundle_carries_widget_view_static_svg_and_text(graph):
    widget = GraphWidget(graph=graph)
    data = bundle_of(widget)
    assert data[WIDGET_MIME]["model_id"] == widget.model_id
    assert "<svg" in data["text/html"] and 'class="terra-graph-svg"' in data["text/html"]
    assert f"{len(graph['nodes'])} nodes" in data["text/plain"]
    assert not widget.error
    assert len(widget.view["nodes"]) == data["text/html"].count('<g class="tn ')


def test_toggle_message_expands_a_group_and_relayouts(graph):
    widget = GraphWidget(graph=graph)
    before = {n["id"] for n in widget.view["nodes"]}
    widget._on_front_end_message(widget, {"type": "toggle", "path": "model/layers"}, [])
    after = {n["id"] for n in widget.view["nodes"]}
    assert "g:model/layers" in before and "g:model/layers" not in after
    assert any(c["path"] == "model/layers" for c in widget.view["clusters"])
    assert all("x" in n for n in widget.view["nodes"])


def test_search_message_selects_reveals_and_cycles(graph):
    widget = GraphWidget(graph=graph)
    hits = [n["id"] for n in graph["nodes"] if "softmax" in n["op"]]
    focus = widget.focus
    widget._on_front_end_message(widget, {"type": "search", "query": "softmax"}, [])
    assert widget.selected == f"n{hits[0]}" and widget.focus == focus + 1
    assert any(n["id"] == widget.selected for n in widget.view["nodes"])
    assert widget.status == f"match 1 of {len(hits)} for 'softmax'"
    widget.search("softmax")
    assert widget.selected == f"n{hits[1]}"
    widget.search("definitely-not-an-op")
    assert "no node matches" in widget.status


def test_expansion_beyond_the_box_budget_is_refused_with_a_message(graph, monkeypatch):
    widget = GraphWidget(graph=graph)
    shown = len(widget.view["nodes"])
    monkeypatch.setattr(layout, "MAX_BOXES", shown - 1)
    widget.toggle("model/layers")  # the group becomes a cluster holding a "×4" fold
    assert "g:model/layers" in {n["id"] for n in widget.view["nodes"]}
    assert "would show more than" in widget.status
    monkeypatch.setattr(layout, "MAX_BOXES", shown)
    widget.toggle("model/layers")
    assert "g:model/layers" not in {n["id"] for n in widget.view["nodes"]}
    assert widget.status == ""


def test_refresh_follows_a_growing_region_and_updates_the_display(graph):
    graphs = [transformer_graph(layers=1), transformer_graph(layers=3)]
    widget = GraphWidget(region="train.py:42", source=lambda region: graphs[0])
    updates = []

    class Handle:
        def update(self, obj):
            updates.append(bundle_of(obj)["text/plain"])

    widget._handle = Handle()
    assert widget.refresh() is False  # unchanged
    graphs[0] = graphs[1]
    assert widget.refresh() is True
    assert updates and f"{len(graphs[1]['nodes'])} nodes" in updates[-1]


@pytest.mark.parametrize("graph_json, message", [
    ({"format": "terra.graph", "version": 1, "nodes": []}, "graph is empty"),
    ({"format": "terra.graph", "version": 0, "nodes": []}, "version 0 is not supported"),
    ({"format": "something.else", "version": 1, "nodes": []}, "unknown graph format"),
    ("{oops", "does not parse"),
])
def test_bad_graphs_show_an_error_in_every_mime_type(graph_json, message):
    widget = GraphWidget(graph=graph_json)
    data = bundle_of(widget)
    assert message in widget.error
    assert message in data["text/plain"]
    assert 'class="terra-error"' in data["text/html"] and message in data["text/html"]
    assert widget.view == {}


def test_missing_region_is_a_message_not_an_exception():
    def source(region):
        raise KeyError(f"no region {region!r}")

    widget = GraphWidget(region="nope", source=source)
    assert widget.error.startswith("no region named 'nope'")
    assert "no region named 'nope'" in bundle_of(widget)["text/plain"]
    assert "terra-error" in bundle_of(widget)["text/html"]


def test_static_graph_does_not_refresh(graph):
    widget = GraphWidget(graph=copy.deepcopy(graph))
    assert widget.refresh() is False


class FakeEvents:
    """The part of IPython's EventManager that auto_refresh uses."""

    def __init__(self):
        self.callbacks = []

    def register(self, name, fn):
        assert name == "post_run_cell"
        self.callbacks.append(fn)

    def unregister(self, name, fn):
        self.callbacks.remove(fn)


def test_auto_refresh_follows_the_region_after_each_cell(monkeypatch):
    import IPython

    shell = type("Shell", (), {"events": FakeEvents()})()
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    graphs = [transformer_graph(layers=1)]
    widget = GraphWidget(region="r", source=lambda region: graphs[-1])
    widget.auto_refresh(True)
    assert len(shell.events.callbacks) == 1
    first = widget.view["total_nodes"]
    graphs.append(transformer_graph(layers=2))
    for callback in list(shell.events.callbacks):
        callback(None)  # a cell ran
    assert widget.view["total_nodes"] == len(graphs[-1]["nodes"]) > first
    widget.auto_refresh(False)
    assert shell.events.callbacks == []


def test_terra_exports_show_graph_lazily():
    import subprocess
    import sys

    code = ("import sys, terra; assert callable(terra.show_graph); "
            "print('anywidget' in sys.modules, 'ipywidgets' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.split() == ["False", "False"]
