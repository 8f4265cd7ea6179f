"""Benchmark: layout and render time of a generated 5,000-node graph (docs/performance.md).

Measures, for the generated transformer-step graph (terra.widgets.synthetic) with about
5,000 nodes, each step the widget takes when it opens or changes: building the view
(grouping, folding), Graphviz layout with each available backend (libgvc through
terra._C, the `dot` program), the static SVG (Python and C++ renderers) and the JSON
sent to the browser. Views measured: the initial one (depth-1 groups expanded), one
group expanded (its identical blocks folded "×N"), that fold opened (each block a box),
the first block fully expanded, and the same graph without module paths (ops in
chunks of 100: initial, one chunk expanded).

    .venv/bin/python bench/visualizer_layout.py [--nodes 5000] [--repeat 3] [--json out.json]

Prints a table; each number is the median of --repeat runs, in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from terra.widgets import layout, svg  # noqa: E402
from terra.widgets.synthetic import graph_with_nodes  # noqa: E402
from terra.widgets.view import GraphModel  # noqa: E402


def _graphviz_version():
    try:
        out = subprocess.run(["dot", "-V"], capture_output=True, text=True, check=False)
        return out.stderr.strip()
    except OSError:
        return "unknown"


def median_ms(fn, repeat):
    times = []
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), result


def scenarios(model):
    """(name, ViewState) for the views measured."""
    initial = model.initial_state()
    expanded = model.initial_state()
    expanded.toggle("model/layers")
    unfolded = model.initial_state()
    unfolded.toggle("model/layers")
    fold = next(n["id"] for n in model.build_view(unfolded)["nodes"] if n["kind"] == "fold")
    unfolded.unfolded.add(fold)
    block = model.initial_state()
    model.reveal(next(n["id"] for n in model.nodes
                      if n["namespace"].startswith("model/layers/0/attn")), block)
    block.expanded |= {p for p in model.members if p.startswith("model/layers/0")}
    return [("initial (depth 1)", initial), ("model/layers expanded (×N fold)", expanded),
            ("fold opened: every block a box", unfolded), ("block 0 fully expanded", block)]


def flat_scenarios(graph):
    """The same graph with every module path removed: ops shown in chunks of 100."""
    flat = json.loads(json.dumps(graph))
    for node in flat["nodes"]:
        node["namespace"] = ""
    model = GraphModel(flat)
    initial = model.initial_state()
    one_chunk = model.initial_state()
    one_chunk.toggle(sorted(model.chunks)[0])
    return model, [("no module paths: initial (chunks)", initial),
                   ("no module paths: one chunk expanded", one_chunk)]


def run(nodes, repeat):
    graph = graph_with_nodes(nodes)
    model = GraphModel(graph)
    flat_model, flat_views = flat_scenarios(graph)
    native = layout.backend_name() == "libgvc"
    backends = ["libgvc", "dot"] if native else ["dot"]
    rows = []
    cases = [(model, name, state) for name, state in scenarios(model)]
    cases += [(flat_model, name, state) for name, state in flat_views]
    for model, name, state in cases:  # noqa: B020 (each case carries its model)
        build_ms, view = median_ms(lambda m=model, st=state: m.build_view(st), repeat)
        row = {"view": name, "graph_nodes": len(graph["nodes"]), "boxes": len(view["nodes"]),
               "edges": len(view["edges"]), "build_view_ms": build_ms}
        laid = None
        for backend in backends:
            ms, laid = median_ms(lambda b=backend: layout.layout_view(view, backend=b), repeat)
            row[f"layout_{backend}_ms"] = ms
        row["svg_python_ms"], _ = median_ms(lambda: svg.render_graph_svg(laid), repeat)
        if native:  # includes passing the view to C++ as JSON text
            row["svg_cpp_ms"], _ = median_ms(lambda: svg.native_graph_svg(laid), repeat)
        row["view_json_kb"] = len(json.dumps(laid)) / 1024
        rows.append(row)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=pathlib.Path)
    args = parser.parse_args(argv)
    rows = run(args.nodes, args.repeat)
    keys = list(dict.fromkeys(k for row in rows for k in row))
    print(" | ".join(keys))
    for row in rows:
        print(" | ".join(f"{row.get(k):.1f}" if isinstance(row.get(k), float) else str(row.get(k))
                         for k in keys))
    env = {"python": platform.python_version(), "machine": platform.machine(),
           "graphviz": _graphviz_version(), "cpus": os.cpu_count(),
           "load_avg_1min": os.getloadavg()[0], "layout_backend": layout.backend_name()}
    print(json.dumps(env))
    if args.json:
        args.json.write_text(json.dumps({"env": env, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
