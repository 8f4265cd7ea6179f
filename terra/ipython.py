"""IPython extension of the Terra kernel: loop marking of cells, a region per cell run,
and the `%terra` line magic.

`load_ipython_extension(shell)` is called by the Terra kernel at start (any IPython
shell works: `%load_ext terra.ipython`). It

- registers an AST transformer that marks the loops of each cell (`terra.loops`),
  keyed by the cell's source so that re-running a cell continues its graphs;
- makes each cell run an iteration of the cell's region (`terra.regions`): the
  policy keeps it a region only while the cell contains no loop region;
- shows a live speedup chart (`terra.widgets.SpeedupView`) below a cell whose loop
  runs as a region (`CellSpeedup`; `TERRA_SPEEDUP_VIEW=0` turns it off);
- registers `%terra status|graph|explain|off|on|reset|bench [N]`.
"""

from __future__ import annotations

import contextlib
import html
import io
import json
import time

from IPython.core.magic import Magics, line_magic, magics_class

from terra import _engine_api, config, iterations, loops, regions

USAGE = "usage: %terra status | graph | explain | off | on | reset | bench [N]"


def _is_magic_only(source: str) -> bool:
    """Cells that are a magic or shell escape are not regions (`%terra status` itself)."""
    stripped = source.lstrip()
    return not stripped or stripped[0] in "%!?"


# Display metadata of the speedup chart: lets tests that compare a cell's outputs with
# ipykernel's recognise (and leave out) the one display Terra adds on its own.
SPEEDUP_METADATA = {"terra": {"view": "speedup"}}


class CellSpeedup:
    """The live speedup chart of one running cell, created at the cell's first loop record.

    Listens to iteration records (terra.iterations) while the cell runs. Records of the
    cell run itself (kind "cell") and of loops that ran no tensor op (an empty graph:
    `for name in files: print(name)`) are ignored, so cells without a tensor loop show
    nothing; the chart follows the first loop region that reports (one chart per cell).
    A cell that displayed a SpeedupView of its own before its first loop record gets no
    second one.
    The view throttles its update_display_data messages; `finish` sends the last state.
    """

    def __init__(self) -> None:
        self.view = None
        self._displayed_before = 0  # SpeedupView.displayed when the cell started

    def start(self) -> None:
        """At pre_run_cell: listen to the records of this cell's iterations."""
        from terra.widgets.speedup import SpeedupView  # noqa: PLC0415 (no torch import)

        self.view = None
        self._displayed_before = SpeedupView.displayed
        iterations.add_iteration_listener(self.on_record)

    def on_record(self, record: dict) -> None:
        """An iteration ended: show the chart at the first loop record, then feed it."""
        if record.get("kind") == "cell" or not record.get("graph_nodes", 1):
            return
        if self.view is None:
            from terra.widgets.speedup import SpeedupView  # noqa: PLC0415

            if SpeedupView.displayed != self._displayed_before:
                iterations.remove_iteration_listener(self.on_record)  # the cell has its own
                return

            self.view = SpeedupView(region=record["region"])
            self.view.metadata = SPEEDUP_METADATA
            self.view.add(record)
            self.view.display()  # after the first add: the first bundle shows a point
            return
        self.view.add(record)

    def finish(self) -> None:
        """At post_run_cell: stop listening; the chart shows every record it got."""
        iterations.remove_iteration_listener(self.on_record)
        view, self.view = self.view, None
        if view is not None:
            view.flush()


class TerraExtension:
    """The per-shell state of the extension: the cell now running and the last one run."""

    def __init__(self, shell) -> None:
        self.shell = shell
        self.current_source: str | None = None
        self.last_source: str | None = None
        self._run: regions.LoopRun | None = None
        self.speedup = CellSpeedup()

    def cell_key(self, source: str) -> str:
        return "cellrun-" + loops.source_key(source)

    def pre_execute(self) -> None:
        self.current_source = None  # silent executions get no pre_run_cell

    def pre_run_cell(self, info) -> None:
        source = info.raw_cell or ""
        self.current_source = source
        if _is_magic_only(source):
            return
        self.last_source = source
        if config.get("TERRA_SPEEDUP_VIEW"):
            self.speedup.start()
        key = self.cell_key(source)
        self._run = regions.POLICY.cell_run(key, f"cell {key[8:14]}")
        self._run.begin()

    def post_run_cell(self, result) -> None:
        run, self._run = self._run, None
        if run is None:
            return
        if result.error_in_exec is not None or result.error_before_exec is not None:
            run.abort()
        run.end()
        self.speedup.finish()

    def marker(self) -> loops.CellLoopMarker:
        return loops.CellLoopMarker(lambda: self.current_source)


def _stats_rows() -> list[dict]:
    """Engine stats per region joined with the policy's view of its site and timings."""
    stats = _engine_api.stats()
    sites = {s["region_key"] or s["key"]: s for s in regions.POLICY.describe()}
    rows = []
    for entry in stats.get("regions", []):
        site = sites.get(entry.get("key"), {})
        rows.append({
            "region": entry.get("name", "?"),
            "phase": entry.get("phase", "?"),
            "policy": site.get("status", ""),
            "traced": entry.get("iterations_traced", 0),
            "co-executed": entry.get("iterations_coexecuted", 0),
            "fallbacks": entry.get("fallbacks", 0),
            "backwards replayed": entry.get("backwards_replayed", 0),
            "nodes": entry.get("graph_nodes", 0),
            "branches": entry.get("graph_branches", 0),
            "speedup vs plain": site.get("speedup", ""),
        })
    return rows


def _format_table(rows: list[dict]) -> tuple[str, str]:
    """(text, html) renderings of a list of same-keyed dicts."""
    if not rows:
        return "no regions yet", "<p>no regions yet</p>"
    columns = list(rows[0])
    cells = [[str(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in r) + "</tr>"
                   for r in cells)
    return "\n".join(lines), f"<table><tr>{head}</tr>{body}</table>"


def _graph_summary(graph_text: str) -> str:
    """A text summary of graph JSON: region, sizes and the most frequent ops."""
    if not graph_text:
        return "no graph yet"
    graph = json.loads(graph_text)
    ops: dict[str, int] = {}
    for node in graph.get("nodes", []):
        ops[node.get("op", "?")] = ops.get(node.get("op", "?"), 0) + 1
    top = ", ".join(f"{op} x{n}" for op, n in sorted(ops.items(), key=lambda kv: -kv[1])[:8])
    region = graph.get("region", {})
    return (f"region {region.get('name', '?')}: {len(graph.get('nodes', []))} nodes, "
            f"{len(graph.get('branches', []))} branches, {len(graph.get('feeds', []))} feeds, "
            f"{len(graph.get('states', []))} states\nops: {top}")


def _region_argument(args: list[str]) -> int | str | None:
    """`%terra graph [REGION]`: a region id (digits), a name or key (may hold spaces)."""
    text = " ".join(args)
    if not text:
        return None
    return int(text) if text.isdigit() else text


@magics_class
class TerraMagics(Magics):
    """`%terra` subcommands."""

    def __init__(self, shell, extension: TerraExtension) -> None:
        super().__init__(shell)
        self.extension = extension

    @line_magic
    def terra(self, line: str):
        words = line.split()
        command = words[0] if words else "status"
        handler = getattr(self, f"_cmd_{command}", None)
        if handler is None:
            print(USAGE)
            return None
        engine = _engine_api.get()
        if engine is None and command != "status":
            print(f"terra: engine unavailable ({_engine_api.unavailable_reason()})")
            return None
        return handler(engine, words[1:])

    def _display(self, text: str, html_text: str) -> None:
        from IPython.display import display  # noqa: PLC0415

        display({"text/plain": text, "text/html": html_text}, raw=True)

    def _cmd_status(self, engine, args) -> None:
        if engine is None:
            print(f"terra: engine unavailable ({_engine_api.unavailable_reason()})")
            return
        state = "on" if engine.is_enabled() else "off"
        text, html_text = _format_table(_stats_rows())
        self._display(f"terra co-execution {state}\n{text}",
                      f"<p>terra co-execution <b>{state}</b></p>{html_text}")

    def _cmd_graph(self, engine, args) -> None:
        import terra  # noqa: PLC0415

        show = getattr(terra, "show_graph", None)
        if callable(show):
            return show(region=_region_argument(args))
        print(_graph_summary(engine.graph_json(-1)))
        return None

    def _cmd_explain(self, engine, args) -> None:
        print(engine.explain() or "no fallback so far")

    def _cmd_off(self, engine, args) -> None:
        engine.set_enabled(False)
        print("terra co-execution off")

    def _cmd_on(self, engine, args) -> None:
        engine.set_enabled(True)
        print("terra co-execution on")

    def _cmd_reset(self, engine, args) -> None:
        regions.POLICY.reset()  # as terra.reset(), through the engine this extension drives
        engine.reset()
        print("terra: regions and graphs forgotten")

    def _cmd_bench(self, engine, args) -> None:
        """Re-runs the last cell N times eagerly and N times co-executed; reports the ratio."""
        source = self.extension.last_source
        if source is None:
            print("terra bench: run a cell first")
            return
        repeats = int(args[0]) if args else 3
        code = loops.compile_marked(source, "<terra-bench>",
                                    key_prefix="cell-" + loops.source_key(source))
        was_enabled = engine.is_enabled()
        times = {}
        try:
            for mode in (False, True):
                engine.set_enabled(mode)
                times[mode] = [self._time_cell(source, code) for _ in range(repeats)]
        finally:
            engine.set_enabled(was_enabled)
        eager, coexec = min(times[False]), min(times[True])
        print(f"terra bench ({repeats} runs each, best): eager {eager * 1e3:.2f} ms, "
              f"co-executed {coexec * 1e3:.2f} ms, speedup {eager / coexec:.2f}x")

    def _time_cell(self, source: str, code) -> float:
        run = regions.POLICY.cell_run(self.extension.cell_key(source), "bench")
        start = time.perf_counter()
        run.begin()
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                exec(code, self.shell.user_ns)
        except BaseException:
            run.abort()
            raise
        finally:
            run.end()
        _engine_api.get().sync()
        return time.perf_counter() - start


def load_ipython_extension(shell) -> None:
    """Installs loop marking, cell regions and `%terra` into `shell` (idempotent)."""
    if getattr(shell, "_terra_extension", None) is not None:
        return
    regions.install()
    extension = TerraExtension(shell)
    shell._terra_extension = extension
    shell.ast_transformers.append(extension.marker())
    shell.events.register("pre_execute", extension.pre_execute)
    shell.events.register("pre_run_cell", extension.pre_run_cell)
    shell.events.register("post_run_cell", extension.post_run_cell)
    shell.register_magics(TerraMagics(shell, extension))


def unload_ipython_extension(shell) -> None:
    """Removes what load_ipython_extension installed."""
    extension = getattr(shell, "_terra_extension", None)
    if extension is None:
        return
    shell.ast_transformers[:] = [t for t in shell.ast_transformers
                                 if not isinstance(t, loops.CellLoopMarker)]
    shell.events.unregister("pre_execute", extension.pre_execute)
    shell.events.unregister("pre_run_cell", extension.pre_run_cell)
    shell.events.unregister("post_run_cell", extension.post_run_cell)
    shell._terra_extension = None
