"""From a region's graph JSON to the *view* the widget draws: grouped, collapsed, folded.

A view is the graph as currently shown: op nodes of expanded groups, one box per
collapsed ``nn.Module`` group, one "×N" box per run of identical sibling groups, feed
nodes, data edges and branch-path edges between whatever represents their ends, and
the expanded groups as nested clusters. Its JSON (format ``terra.view``) is what the
layout engines read (``terra._C.visualizer`` or the ``dot`` program) and what the front
end receives; docs/architecture.md "View JSON" describes it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

__all__ = [
    "GRAPH_FORMAT", "SUPPORTED_VERSIONS", "GraphFormatError", "ViewState", "GraphModel",
    "load_graph",
]

GRAPH_FORMAT = "terra.graph"
SUPPORTED_VERSIONS = (1,)
VIEW_FORMAT = "terra.view"

# Node box geometry in px (= Graphviz points). Fixed sizes keep Graphviz from measuring
# text, which makes layout fast and identical with every backend and font set.
CHAR_W = 7.0
OP_H = 26.0
GROUP_H = 34.0
FEED_H = 24.0
# A module (or the top level) with more direct ops than CHUNK_OPS shows them in
# collapsed chunks of CHUNK_SIZE ops in program order ("ops 1–100"): a graph recorded
# without module paths would otherwise put thousands of boxes in one view, which
# Graphviz cannot lay out in time.
CHUNK_OPS = 150
CHUNK_SIZE = 100


class GraphFormatError(ValueError):
    """The input is not a graph JSON this visualizer can read; the message says why."""


def load_graph(graph) -> dict:
    """Parse and check a graph JSON (str, bytes or dict); raise GraphFormatError if unusable.

    Rejects an unknown ``format`` and any ``version`` outside SUPPORTED_VERSIONS,
    naming the version this reader supports.
    """
    if isinstance(graph, (bytes, bytearray)):
        graph = graph.decode("utf-8", "replace")
    if isinstance(graph, str):
        try:
            graph = json.loads(graph)
        except json.JSONDecodeError as err:
            raise GraphFormatError(f"graph JSON does not parse: {err}") from None
    if not isinstance(graph, dict):
        raise GraphFormatError(f"graph JSON must be an object, got {type(graph).__name__}")
    fmt = graph.get("format")
    supported = ", ".join(str(v) for v in SUPPORTED_VERSIONS)
    if fmt != GRAPH_FORMAT:
        raise GraphFormatError(
            f"unknown graph format {fmt!r}: this visualizer reads {GRAPH_FORMAT!r} "
            f"version {supported}")
    version = graph.get("version")
    if version not in SUPPORTED_VERSIONS:
        raise GraphFormatError(
            f"graph JSON version {version!r} is not supported: this visualizer reads "
            f"{GRAPH_FORMAT!r} version {supported}")
    nodes = graph.get("nodes")
    if not isinstance(nodes, list):
        raise GraphFormatError("graph JSON has no 'nodes' list")
    for node in nodes:
        if not isinstance(node, dict) or "id" not in node:
            raise GraphFormatError("every node needs an 'id'")
    return graph


@dataclass
class ViewState:
    """Which groups are expanded and which "×N" folds are opened; the user changes it."""

    expanded: set = field(default_factory=set)
    unfolded: set = field(default_factory=set)

    def toggle(self, path: str) -> None:
        """Expand a collapsed group or collapse an expanded one (with its descendants)."""
        if path in self.expanded:
            self.expanded = {p for p in self.expanded
                             if p != path and not p.startswith(path + "/")}
        else:
            self.expanded.add(path)


def _parent(path: str) -> str:
    return path.rpartition("/")[0]


def _prefixes(namespace: str) -> list:
    parts = namespace.split("/") if namespace else []
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _heat(time_us, max_time) -> float | None:
    if time_us is None or not max_time:
        return None
    return round(math.log1p(time_us) / math.log1p(max_time), 4)


def _grouping_namespaces(nodes: list) -> tuple:
    """Node id -> the path it is grouped under, and the set of chunk group paths.

    The path is the node's ``namespace``, except where its module has more than
    CHUNK_OPS direct ops: those get a chunk segment ("ops 101–200") appended.
    """
    direct: dict = {}
    for node in nodes:
        direct.setdefault(node.get("namespace") or "", []).append(node["id"])
    paths, chunks = {}, set()
    for ns, ids in direct.items():
        if len(ids) <= CHUNK_OPS:
            paths.update((i, ns) for i in ids)
            continue
        for k, node_id in enumerate(ids):
            start = k - k % CHUNK_SIZE
            segment = f"ops {start + 1}–{min(start + CHUNK_SIZE, len(ids))}"
            paths[node_id] = f"{ns}/{segment}" if ns else segment
            chunks.add(paths[node_id])
    return paths, chunks


class GraphModel:
    """One graph JSON, indexed for building views and searching by op name."""

    def __init__(self, graph):
        self.graph = load_graph(graph)
        self.nodes = self.graph["nodes"]
        self.by_id = {node["id"]: node for node in self.nodes}
        self.states = {s.get("id"): s for s in self.graph.get("states", []) or []}
        self.feeds = {f.get("id"): f for f in self.graph.get("feeds", []) or []}
        self.ns, self.chunks = _grouping_namespaces(self.nodes)
        self.children: dict = {"": []}  # group path -> child group paths, first-seen order
        self.members: dict = {}  # group path -> node ids in its subtree, program order
        for node in self.nodes:
            for path in _prefixes(self.ns[node["id"]]):
                if path not in self.members:
                    self.members[path] = []
                    self.children.setdefault(path, [])
                    self.children.setdefault(_parent(path), []).append(path)
                self.members[path].append(node["id"])
        self._signatures: dict = {}
        self.branches = self._branches()

    # ----- queries -------------------------------------------------------------------

    def initial_state(self) -> ViewState:
        """Groups at depth 1 expanded (but op chunks), everything deeper collapsed."""
        return ViewState(expanded={p for p in self.members
                                   if "/" not in p and p not in self.chunks})

    def search(self, query: str) -> list:
        """Ids of the nodes whose op or label contains ``query`` (case-insensitive)."""
        q = query.strip().lower()
        if not q:
            return []
        return [n["id"] for n in self.nodes
                if q in str(n.get("op", "")).lower() or q in str(n.get("label", "")).lower()]

    def reveal(self, node_id, state: ViewState) -> None:
        """Expand every group around node ``node_id`` (and open its folds) so it shows."""
        node = self.by_id.get(node_id)
        if node is None:
            return
        for path in _prefixes(self.ns[node_id]):
            state.expanded.add(path)

    def signature(self, path: str) -> int:
        """Hash of a group's structure: its ops and their paths relative to the group."""
        sig = self._signatures.get(path)
        if sig is None:
            cut = len(path)
            sig = hash(tuple((self.ns[i][cut:], self.by_id[i].get("op"))
                             for i in self.members[path]))
            self._signatures[path] = sig
        return sig

    def _branches(self) -> list:
        listed = self.graph.get("branches") or []
        if listed:
            return [b for b in listed if isinstance(b, dict) and "node" in b]
        return [{"node": n["id"], "succ": n["succ"], "counts": [], "last": None}
                for n in self.nodes if len(n.get("succ") or []) > 1]

    # ----- the view ------------------------------------------------------------------

    def build_view(self, state: ViewState) -> dict:
        """The view JSON for ``state`` (without positions; see terra.widgets.layout)."""
        folds = self._active_folds(state)
        fold_of = {member: fid for fid, f in folds.items() for member in f["members"]}
        rep_cache: dict = {}

        def rep(node):
            """(view id, enclosing cluster path) of the box that shows ``node``."""
            ns = self.ns[node["id"]]
            hit = rep_cache.get(ns)
            if hit is None:
                cluster, hit = None, None
                for path in _prefixes(ns):
                    if path in fold_of:
                        hit = (fold_of[path], cluster)
                        break
                    if path not in state.expanded:
                        hit = ("g:" + path, cluster)
                        break
                    cluster = path
                if hit is None:
                    hit = (None, cluster)
                rep_cache[ns] = hit
            vid, cluster = hit
            return ("n" + str(node["id"]), cluster) if vid is None else (vid, cluster)

        vnodes: dict = {}
        reps = {}
        for node in self.nodes:
            vid, cluster = rep(node)
            reps[node["id"]] = vid
            vnode = vnodes.get(vid)
            if vnode is None:
                vnode = vnodes[vid] = self._new_view_node(vid, node, cluster, folds)
            vnode["size"] += 1
            if node.get("time_us") is not None:
                vnode["time_us"] = (vnode["time_us"] or 0.0) + float(node["time_us"])
            vnode["fetch"] = vnode["fetch"] or bool(node.get("fetch"))
        for b in self.branches:
            if b["node"] in reps:
                vnodes[reps[b["node"]]]["branch"] = True

        edges = self._edges(reps, vnodes)
        clusters = self._clusters(vnodes)
        times = [v["time_us"] for v in vnodes.values() if v["time_us"] is not None]
        max_time = max(times) if times else None
        for vnode in vnodes.values():
            vnode["heat"] = _heat(vnode["time_us"], max_time)
            if vnode["time_us"] is not None:
                vnode["time_us"] = round(vnode["time_us"], 3)
        return {
            "format": VIEW_FORMAT,
            "version": 1,
            "region": self.graph.get("region") or {},
            "stats": self.graph.get("stats") or {},
            "total_nodes": len(self.nodes),
            "nodes": list(vnodes.values()),
            "edges": edges,
            "clusters": clusters,
            "time_range_us": [min(times), max_time] if times else None,
        }

    def _active_folds(self, state: ViewState) -> dict:
        """Runs of >= 2 identical sibling groups, all collapsed, shown as one "×N" box."""
        folds: dict = {}
        stack = [""]
        while stack:
            parent = stack.pop()
            kids = self.children.get(parent, [])
            i = 0
            while i < len(kids):
                j = i + 1
                while (j < len(kids) and self.signature(kids[j]) == self.signature(kids[i])):
                    j += 1
                run = kids[i:j]
                fid = "f:" + run[0] + ".." + run[-1].rpartition("/")[2]
                if (len(run) > 1 and fid not in state.unfolded
                        and not any(k in state.expanded for k in run)):
                    folds[fid] = {"members": run, "parent": parent}
                else:
                    stack.extend(k for k in run if k in state.expanded)
                i = j
        return folds

    def _new_view_node(self, vid: str, node: dict, cluster, folds: dict) -> dict:
        base = {"id": vid, "parent": cluster, "size": 0, "time_us": None, "fetch": False,
                "branch": False}
        if vid.startswith("g:"):
            path = vid[2:]
            name = path.rpartition("/")[2]
            label = f"{name}  ({len(self.members[path])} ops)"
            base.update(kind="group", path=path, label=label,
                        w=CHAR_W * len(label) + 34, h=GROUP_H)
        elif vid.startswith("f:"):
            fold = folds[vid]
            first, last = fold["members"][0], fold["members"][-1]
            name = first.rpartition("/")[2] + "…" + last.rpartition("/")[2]
            label = f"{name}  ×{len(fold['members'])}"
            base.update(kind="fold", path=_parent(first), members=fold["members"], label=label,
                        w=CHAR_W * len(label) + 34, h=GROUP_H)
        else:
            label = str(node.get("label") or node.get("op", "?"))
            base.update(kind="op", label=label, node=node["id"],
                        w=max(56.0, CHAR_W * len(label) + 24), h=OP_H,
                        detail=self._detail(node))
        return base

    def _detail(self, node: dict) -> dict:
        """What the details panel shows for an op node."""
        src = node.get("source") or {}
        inputs = []
        for inp in node.get("inputs") or []:
            if "node" in inp:
                other = self.by_id.get(inp["node"], {})
                inputs.append(f"node {inp['node']} ({other.get('label', '?')})")
            elif "state" in inp:
                st = self.states.get(inp["state"], {})
                inputs.append(f"state {st.get('name', inp['state'])} {st.get('shape', '')}")
            elif "feed" in inp:
                fd = self.feeds.get(inp["feed"], {})
                inputs.append(f"feed {inp['feed']} {fd.get('shape', '')}")
            elif "const" in inp:
                inputs.append(f"constant {inp['const']}")
        return {
            "id": node["id"], "op": node.get("op"), "namespace": node.get("namespace") or "",
            "outputs": node.get("outputs") or [], "inputs": inputs,
            "source": f"{src.get('file', '?')}:{src.get('line', '?')}" if src else None,
            "count": node.get("count"), "fetch": bool(node.get("fetch")),
            "time_us": node.get("time_us"),
        }

    def _edges(self, reps: dict, vnodes: dict) -> list:
        data: dict = {}
        feeds_used: dict = {}
        for node in self.nodes:
            target = reps[node["id"]]
            for inp in node.get("inputs") or []:
                if "node" in inp and inp["node"] in reps:
                    source = reps[inp["node"]]
                elif "feed" in inp:
                    source = f"feed:{inp['feed']}"
                    feeds_used[source] = inp["feed"]
                else:
                    continue
                if source != target:
                    data[(source, target)] = data.get((source, target), 0) + 1
        for vid, index in feeds_used.items():
            fd = self.feeds.get(index, {})
            label = f"feed {index} {fd.get('shape', '')}".strip()
            vnodes[vid] = {"id": vid, "kind": "feed", "parent": None, "label": label,
                           "size": 0, "time_us": None, "fetch": False, "branch": False,
                           "w": CHAR_W * len(label) + 24, "h": FEED_H}
        edges = [{"source": s, "target": t, "kind": "data", "count": c}
                 for (s, t), c in data.items()]
        for b in self.branches:
            counts = b.get("counts") or []
            for j, child in enumerate(b.get("succ") or []):
                if b["node"] not in reps or child not in reps:
                    continue
                source, target = reps[b["node"]], reps[child]
                if source == target:
                    continue
                taken = counts[j] if j < len(counts) else None
                edges.append({"source": source, "target": target, "kind": "path",
                              "count": taken, "last": b.get("last") == j,
                              "label": f"{taken}×" if taken is not None else ""})
        return edges

    def _clusters(self, vnodes: dict) -> list:
        paths = set()
        for vnode in vnodes.values():
            path = vnode.get("parent")
            while path and path not in paths:
                paths.add(path)
                path = _parent(path)
        return [{"id": "c:" + p, "path": p, "label": p.rpartition("/")[2],
                 "parent": _parent(p) or None, "size": len(self.members.get(p, []))}
                for p in sorted(paths, key=lambda p: (p.count("/"), p))]
