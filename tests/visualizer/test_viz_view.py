"""Building views from graph JSON: grouping, collapsing, "×N" folds, marks, bad input."""
import copy
import json

import pytest

from terra.widgets.synthetic import transformer_graph
from terra.widgets.view import GraphFormatError, GraphModel, load_graph


def op_count_under(graph, prefix):
    return sum(1 for n in graph["nodes"]
               if n["namespace"] == prefix or n["namespace"].startswith(prefix + "/"))


def test_initial_view_shows_depth_one_groups_expanded_and_deeper_ones_collapsed(graph):
    model = GraphModel(graph)
    view = model.build_view(model.initial_state())
    groups = {n["path"]: n for n in view["nodes"] if n["kind"] == "group"}
    assert {"model/embed", "model/layers", "model/head", "backward/model"} <= set(groups)
    assert groups["model/layers"]["size"] == op_count_under(graph, "model/layers")
    assert {c["path"] for c in view["clusters"]} == {"model", "backward", "optimizer", "loss",
                                                     "eval"}
    # Every op of the graph is represented exactly once.
    assert sum(n["size"] for n in view["nodes"] if n["kind"] != "feed") == len(graph["nodes"])


def test_identical_sibling_blocks_fold_as_times_n(graph):
    model = GraphModel(graph)
    state = model.initial_state()
    state.toggle("model/layers")
    view = model.build_view(state)
    folds = [n for n in view["nodes"] if n["kind"] == "fold"]
    layers = sorted({n["namespace"].split("/")[2] for n in graph["nodes"]
                     if n["namespace"].startswith("model/layers/")}, key=int)
    assert len(folds) == 1
    assert folds[0]["members"] == [f"model/layers/{i}" for i in layers]
    assert folds[0]["label"].endswith(f"×{len(layers)}")
    state.unfolded.add(folds[0]["id"])
    unfolded = model.build_view(state)
    assert {n.get("path") for n in unfolded["nodes"] if n["kind"] == "group"} >= set(
        folds[0]["members"])


def test_toggle_collapses_descendants_too(graph):
    model = GraphModel(graph)
    state = model.initial_state()
    state.toggle("model/layers")
    state.toggle("model/layers/0")
    state.toggle("model")
    assert not any(p.startswith("model") for p in state.expanded if p != "model")
    view = model.build_view(state)
    assert [n for n in view["nodes"] if n["id"] == "g:model"][0]["size"] == op_count_under(
        graph, "model")


def test_edges_connect_view_nodes_and_mark_branch_paths(graph):
    model = GraphModel(graph)
    view = model.build_view(model.initial_state())
    ids = {n["id"] for n in view["nodes"]}
    assert all(e["source"] in ids and e["target"] in ids for e in view["edges"])
    assert all(e["source"] != e["target"] for e in view["edges"])
    branch = graph["branches"][0]
    paths = [e for e in view["edges"] if e["kind"] == "path"]
    assert len(paths) == len(branch["succ"])
    assert [e["last"] for e in paths] == [i == branch["last"] for i in range(len(paths))]
    assert [e["count"] for e in paths] == branch["counts"]


def test_fetch_feed_and_branch_marks(graph):
    model = GraphModel(graph)
    state = model.initial_state()
    view = model.build_view(state)
    fetch_ops = {n["id"] for n in graph["nodes"] if n["fetch"]}
    shown_fetch = {n["node"] for n in view["nodes"] if n["kind"] == "op" and n["fetch"]}
    assert shown_fetch == fetch_ops  # both fetches sit in expanded depth-1 groups
    feeds = {f"feed:{i['feed']}" for n in graph["nodes"] for i in n["inputs"] if "feed" in i}
    assert {n["id"] for n in view["nodes"] if n["kind"] == "feed"} == feeds
    branch_node = f"n{graph['branches'][0]['node']}"
    assert [n for n in view["nodes"] if n["id"] == branch_node][0]["branch"]


def test_time_overlay_sums_members_and_scales_heat(graph):
    model = GraphModel(graph)
    view = model.build_view(model.initial_state())
    layers = [n for n in view["nodes"] if n.get("path") == "model/layers"][0]
    expected = sum(n["time_us"] for n in graph["nodes"]
                   if n["namespace"].startswith("model/layers/"))
    assert layers["time_us"] == pytest.approx(expected, rel=1e-6)
    heats = [n["heat"] for n in view["nodes"] if n["heat"] is not None]
    assert max(heats) == 1.0 and min(heats) > 0
    assert view["time_range_us"][1] == pytest.approx(max(
        n["time_us"] for n in view["nodes"] if n["time_us"] is not None))


def test_search_finds_op_and_reveal_expands_its_groups(graph):
    model = GraphModel(graph)
    hits = model.search("softmax")
    assert hits == [n["id"] for n in graph["nodes"] if "softmax" in n["op"]]
    state = model.initial_state()
    model.reveal(hits[-1], state)
    view = model.build_view(state)
    shown = [n for n in view["nodes"] if n["id"] == f"n{hits[-1]}"]
    assert shown and shown[0]["detail"]["op"] == graph["nodes"][hits[-1]]["op"]
    src = graph["nodes"][hits[-1]]["source"]
    assert shown[0]["detail"]["source"] == f"{src['file']}:{src['line']}"
    assert model.search("no-such-op") == []


def test_detail_lists_shapes_inputs_and_module(graph):
    model = GraphModel(graph)
    node = next(n for n in graph["nodes"] if n["op"] == "aten::addmm")
    detail = model._detail(node)
    assert detail["outputs"] == node["outputs"]
    assert detail["namespace"] == node["namespace"]
    assert len(detail["inputs"]) == len(node["inputs"])


@pytest.mark.parametrize("mutate, message", [
    (lambda g: g.update(format="tensorboard"), "unknown graph format 'tensorboard'"),
    (lambda g: g.update(version=0), "version 0 is not supported"),
    (lambda g: g.pop("version"), "version None is not supported"),
    (lambda g: g.update(nodes="x"), "no 'nodes' list"),
])
def test_bad_graph_json_is_rejected_with_a_clear_message(graph, mutate, message):
    bad = copy.deepcopy(graph)
    mutate(bad)
    with pytest.raises(GraphFormatError, match=message) as err:
        GraphModel(bad)
    if "version" in message:
        assert "version 1" in str(err.value)  # names the supported version


def test_json_text_and_garbage_input():
    assert load_graph(json.dumps({"format": "terra.graph", "version": 1, "nodes": []}))
    with pytest.raises(GraphFormatError, match="does not parse"):
        load_graph("{not json")
    with pytest.raises(GraphFormatError, match="must be an object"):
        load_graph([1, 2])


def test_empty_graph_builds_an_empty_view():
    model = GraphModel({"format": "terra.graph", "version": 1, "nodes": []})
    view = model.build_view(model.initial_state())
    assert view["nodes"] == [] and view["edges"] == []


def test_a_flat_graph_shows_its_ops_in_collapsed_chunks():
    """A graph without module paths (e.g. recorded outside nn.Module) stays layable."""
    from terra.widgets.view import CHUNK_OPS, CHUNK_SIZE

    graph = transformer_graph(layers=8)
    for node in graph["nodes"]:
        node["namespace"] = ""
    assert len(graph["nodes"]) > CHUNK_OPS
    model = GraphModel(graph)
    view = model.build_view(model.initial_state())
    chunks = [n for n in view["nodes"] if n["kind"] == "group"]
    assert len(chunks) == -(-len(graph["nodes"]) // CHUNK_SIZE)
    assert sum(c["size"] for c in chunks) == len(graph["nodes"])
    assert chunks[0]["label"].startswith(f"ops 1–{CHUNK_SIZE}")
    hit = model.search("softmax")[0]
    state = model.initial_state()
    model.reveal(hit, state)
    shown = model.build_view(state)
    assert any(n["id"] == f"n{hit}" for n in shown["nodes"])
    assert len(shown["nodes"]) < len(graph["nodes"])
