"""Graphviz layout of a view (terra.widgets.view), computed in the kernel process.

Two backends give the same result format: the C++ library through
``terra._C.visualizer.layout`` (libgvc, in process) when the compiled half is built,
else the ``dot`` program (``dot -Tjson``). Both add to the view: ``x``/``y`` (centre)
on nodes, ``points`` (cubic Bézier control points, first point then three per segment)
on edges, ``x``/``y``/``w``/``h`` (top-left, size) on clusters, and ``width``/``height``.
Coordinates are px with the origin at the top left.
"""

from __future__ import annotations

import json
import shutil
import subprocess

__all__ = ["LayoutError", "layout_view", "backend_name", "to_dot", "MAX_BOXES"]

# Graph-wide Graphviz settings; visualizer/src/layout.cpp uses the same values.
# nslimit/nslimit1 bound Graphviz's network-simplex passes: without them a view with a
# hundred boxes and long edges took 20+ s, with them about a second (bench/visualizer_layout.py).
GRAPH_ATTRS = {"rankdir": "TB", "nodesep": "0.25", "ranksep": "0.35", "splines": "true",
               "nslimit": "2", "nslimit1": "2", "mclimit": "0.5"}
# The most boxes a view may show; expanding beyond it is refused with a message (a fully
# expanded 5,000-node graph takes Graphviz minutes).
MAX_BOXES = 200
CLUSTER_MARGIN = "16"
POINTS_PER_INCH = 72.0


class LayoutError(RuntimeError):
    """No layout could be computed (no backend, or Graphviz failed)."""


def _native():
    """terra._C.visualizer if the compiled half is built with it, else None."""
    try:
        from terra import _C  # noqa: PLC0415 (optional compiled half)
    except ImportError:
        return None
    return getattr(_C, "visualizer", None)


def backend_name() -> str:
    """'libgvc' (terra._C), 'dot' (the program) or 'none'."""
    if _native() is not None:
        return "libgvc"
    return "dot" if shutil.which("dot") else "none"


def layout_view(view: dict, backend: str | None = None) -> dict:
    """Return ``view`` with positions added (see module doc); an empty view stays empty."""
    backend = backend or backend_name()
    if not view.get("nodes"):
        return dict(view, width=0.0, height=0.0)
    if backend == "libgvc":
        positions = json.loads(_native().layout(json.dumps(view)))
    elif backend == "dot":
        positions = _layout_with_dot_program(view)
    else:
        raise LayoutError("no Graphviz: neither terra._C.visualizer nor the `dot` program")
    return merge_positions(view, positions)


def merge_positions(view: dict, positions: dict) -> dict:
    """Copy a layout result ({nodes:{id:[x,y]}, edges:[points], clusters:{id:[x,y,w,h]}})."""
    out = dict(view, width=positions["width"], height=positions["height"])
    node_pos = positions["nodes"]
    out["nodes"] = [dict(n, x=node_pos[n["id"]][0], y=node_pos[n["id"]][1])
                    for n in view["nodes"]]
    out["edges"] = [dict(e, points=pts) for e, pts in zip(view["edges"], positions["edges"])]
    cl = positions["clusters"]
    out["clusters"] = [dict(c, x=cl[c["id"]][0], y=cl[c["id"]][1], w=cl[c["id"]][2],
                            h=cl[c["id"]][3]) for c in view["clusters"] if c["id"] in cl]
    return out


def _quote(text: str) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(view: dict) -> str:
    """The DOT text of a view: fixed-size unlabeled boxes, expanded groups as clusters."""
    lines = ["digraph terra {"]
    lines.append("graph [" + ", ".join(f"{k}={v}" for k, v in GRAPH_ATTRS.items()) + "];")
    lines.append('node [shape=box, fixedsize=true, label=""];')
    lines.append("edge [arrowhead=none];")
    by_parent: dict = {}
    for node in view["nodes"]:
        by_parent.setdefault(node.get("parent") and "c:" + node["parent"], []).append(node)
    sub: dict = {}
    for cluster in view["clusters"]:
        sub.setdefault(cluster.get("parent") and "c:" + cluster["parent"], []).append(cluster)

    def emit(cluster_id, depth):
        for node in by_parent.get(cluster_id, []):
            lines.append(f"{_quote(node['id'])} [width={node['w'] / POINTS_PER_INCH:.4f}, "
                         f"height={node['h'] / POINTS_PER_INCH:.4f}];")
        for cluster in sub.get(cluster_id, []):
            lines.append(f"subgraph {_quote('cluster_' + cluster['id'])} {{")
            lines.append(f"graph [margin={CLUSTER_MARGIN}];")
            emit(cluster["id"], depth + 1)
            lines.append("}")

    emit(None, 0)
    for i, edge in enumerate(view["edges"]):
        lines.append(f"{_quote(edge['source'])} -> {_quote(edge['target'])} [id=e{i}];")
    lines.append("}")
    return "\n".join(lines)


def _layout_with_dot_program(view: dict) -> dict:
    dot = shutil.which("dot")
    if dot is None:
        raise LayoutError("the `dot` program is not installed")
    try:
        proc = subprocess.run([dot, "-Tjson0"], input=to_dot(view), capture_output=True,
                              text=True, check=False, timeout=60)
    except subprocess.TimeoutExpired:
        raise LayoutError("dot took more than 60 s; collapse some groups") from None
    if proc.returncode != 0:
        raise LayoutError(f"dot failed: {proc.stderr.strip()[:500]}")
    return _positions_from_dot_json(json.loads(proc.stdout), len(view["edges"]))


def _floats(text: str) -> list:
    return [float(v) for v in text.split(",")]


def _positions_from_dot_json(doc: dict, n_edges: int) -> dict:
    """Convert `dot -Tjson0` output into the layout result (y flipped, top-left origin)."""
    _, _, width, height = _floats(doc["bb"])
    nodes, clusters = {}, {}
    for obj in doc.get("objects", []):
        if "bb" in obj and str(obj.get("name", "")).startswith("cluster_"):
            x0, y0, x1, y1 = _floats(obj["bb"])
            clusters[obj["name"][len("cluster_"):]] = [x0, height - y1, x1 - x0, y1 - y0]
        elif "pos" in obj:
            x, y = _floats(obj["pos"])
            nodes[obj["name"]] = [x, height - y]
    edges = [[] for _ in range(n_edges)]
    for edge in doc.get("edges", []):
        index = int(str(edge.get("id", "e0"))[1:])
        pts = []
        for token in edge.get("pos", "").split():
            if token.startswith(("e,", "s,")):
                continue
            x, y = _floats(token)
            pts.append([round(x, 2), round(height - y, 2)])
        edges[index] = pts
    return {"width": width, "height": height, "nodes": nodes, "edges": edges,
            "clusters": clusters}
