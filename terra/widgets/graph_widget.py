"""GraphWidget: the TraceGraph of a region, live in JupyterLab/Notebook, static SVG in exports.

The front end (static/graph.js, one plain ES module) only draws and pans/zooms; every
layout is computed here, in the kernel process, by Graphviz (terra.widgets.layout).
The front end asks for changes with custom messages:

  {"type": "toggle", "path": P}      expand or collapse group P
  {"type": "unfold", "id": F}        show the groups folded in the "×N" box F one by one
  {"type": "search", "query": Q}     find the next node whose op contains Q; expand to it
  {"type": "refresh"}                re-read the region's graph

and receives the ``view`` trait (laid-out view JSON), ``selected`` (view id to
highlight), ``focus`` (a counter: centre on ``selected`` when it changes), ``status``
(a one-line message) and ``error`` (an error message; the front end then shows an
error box instead of the graph).
"""

from __future__ import annotations

import pathlib
import weakref

import anywidget
import traitlets

from . import svg
from . import layout as graph_layout
from .layout import MAX_BOXES, LayoutError, layout_view
from .view import GraphFormatError, GraphModel

__all__ = ["GraphWidget", "show_graph", "GraphSourceError"]

_STATIC = pathlib.Path(__file__).parent / "static"


class GraphSourceError(LookupError):
    """The graph could not be obtained (no engine, or no such region)."""


def _missing_region(region, err) -> GraphSourceError:
    """The message for a source that could not find ``region``."""
    what = f"no region named {region!r}" if region is not None else "no region yet"
    detail = str(err).strip("'\"")
    return GraphSourceError(f"{what} ({detail})" if detail else what)


def _fetch_graph(region):
    """The graph JSON of ``region`` from the engine (terra.graph).

    With ``region`` None, the engine's most recently active region; if that one's graph
    is empty (typically the region of the cell calling show_graph), the newest region
    that has nodes. Returns (graph JSON, the region id it came from or ``region``).
    """
    try:
        import terra  # noqa: PLC0415 (the package may be partially built)
    except ImportError as err:
        raise GraphSourceError(f"terra is not importable: {err}") from None
    graph_fn = getattr(terra, "graph", None)
    if graph_fn is None:
        raise GraphSourceError("this build of terra has no engine (terra.graph is missing)")
    if region is not None:
        return graph_fn(region), region
    graph = graph_fn()
    if isinstance(graph, dict) and graph.get("nodes"):
        return graph, (graph.get("region") or {}).get("id")
    regions = (getattr(terra, "stats", dict)() or {}).get("regions") or []
    with_nodes = [r for r in regions if r.get("graph_nodes")]
    if with_nodes:
        newest = max(with_nodes, key=lambda r: r.get("id", -1))
        return graph_fn(newest["id"]), newest["id"]
    return graph, None


class GraphWidget(anywidget.AnyWidget):
    """Interactive view of one region's TraceGraph (see the module doc for the protocol)."""

    _esm = _STATIC / "graph.js"
    _css = _STATIC / "graph.css"

    view = traitlets.Dict().tag(sync=True)
    selected = traitlets.Unicode("").tag(sync=True)
    focus = traitlets.Int(0).tag(sync=True)
    status = traitlets.Unicode("").tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    title = traitlets.Unicode("Terra graph").tag(sync=True)

    def __init__(self, graph=None, region=None, source=None, **kwargs):
        """Show ``graph`` (graph JSON: dict or str), or read ``region`` via ``source``.

        ``source(region)`` returns the graph JSON (default: terra.graph). Bad input never
        raises: the widget shows the error (``error`` trait and text/html bundle).
        """
        super().__init__(**kwargs)
        self._region = region
        self._source = source
        self._fixed_graph = graph is not None and source is None and region is None
        self._model = None
        self._state = None
        self._matches = ([], -1, "")
        self._handle = None
        self._shell_hook = None
        self.on_msg(self._on_front_end_message)
        self.set_graph(graph) if graph is not None else self.refresh()

    # ----- data --------------------------------------------------------------------------

    def refresh(self) -> bool:
        """Re-read the region's graph; relayout and update the display if it changed."""
        if self._fixed_graph:
            return False
        try:
            if self._source is None:
                graph, resolved = _fetch_graph(self._region)
            else:
                graph, resolved = self._source(self._region), self._region
        except GraphSourceError as err:
            self._show_error(str(err))
            return True
        except (KeyError, LookupError, ValueError) as err:
            self._show_error(str(_missing_region(self._region, err)))
            return True
        except Exception as err:  # noqa: BLE001 (a broken engine: say so, never raise)
            self._show_error(f"could not read the graph: {type(err).__name__}: {err}")
            return True
        if isinstance(graph, dict) and not graph:
            self._show_error("no region has run yet: run a loop (or terra.iteration) first")
            return True
        if resolved is not None:
            self._region = resolved  # follow this region from now on, not the newest one
        return self.set_graph(graph, keep_state=True)

    @property
    def region(self):
        """The region shown (name or id as given, or the id resolved from the engine)."""
        return self._region

    def set_graph(self, graph, keep_state: bool = False) -> bool:
        """Show a new graph JSON; returns whether anything changed."""
        try:
            model = GraphModel(graph)
        except GraphFormatError as err:
            self._show_error(str(err))
            return True
        if self._model is not None and keep_state and not self.error \
                and _graph_version(model.graph) == _graph_version(self._model.graph):
            return False
        old_state = self._state
        self._model = model
        self._state = model.initial_state()
        if keep_state and old_state is not None:
            self._state.expanded |= {p for p in old_state.expanded if p in model.members}
            self._state.unfolded |= old_state.unfolded
        region = model.graph.get("region") or {}
        self.title = f"Terra graph — region {region.get('name', self._region or '?')}"
        if not model.nodes:
            self._show_error("the region's graph is empty (no op was recorded yet)")
            return True
        self._relayout()
        self._update_display()
        return True

    def _show_error(self, message: str) -> None:
        with self.hold_sync():
            self.error = message
            self.view = {}
        self._update_display()

    def _relayout(self, selected: str = "") -> None:
        view = self._model.build_view(self._state)
        try:
            laid_out = layout_view(view)
        except LayoutError as err:
            self._show_error(str(err))
            return
        with self.hold_sync():
            self.error = ""
            self.view = laid_out
            self.selected = selected
            if selected:
                self.focus += 1

    # ----- front-end requests ------------------------------------------------------------

    def _on_front_end_message(self, _widget, content, _buffers) -> None:
        if not isinstance(content, dict) or self._model is None:
            return
        kind = content.get("type")
        if kind == "toggle":
            self.toggle(str(content.get("path", "")))
        elif kind == "unfold":
            self.unfold(str(content.get("id", "")))
        elif kind == "search":
            self.search(str(content.get("query", "")))
        elif kind == "refresh":
            self.refresh()

    def toggle(self, path: str) -> None:
        """Expand (or collapse) the group at module path ``path`` and relayout."""
        if path not in self._model.members:
            self.status = f"no group {path!r}"
            return
        before = set(self._state.expanded)
        self._state.toggle(path)
        if not self._within_budget():
            self._state.expanded = before
            self.status = (f"expanding {path} would show more than {MAX_BOXES} boxes; "
                           "expand one of its sub-groups instead")
            return
        self.status = ""
        self._relayout()

    def unfold(self, fold_id: str) -> None:
        """Show each group of a "×N" fold on its own."""
        self._state.unfolded.add(fold_id)
        if not self._within_budget():
            self._state.unfolded.discard(fold_id)
            self.status = f"unfolding would show more than {MAX_BOXES} boxes"
            return
        self.status = ""
        self._relayout()

    def search(self, query: str) -> None:
        """Select the next node whose op or label contains ``query``; expand and centre it."""
        ids, pos, last = self._matches
        if query != last:
            ids, pos = self._model.search(query), -1
        if not ids:
            self._matches = ([], -1, query)
            self.status = f"no node matches {query!r}"
            return
        pos = (pos + 1) % len(ids)
        self._matches = (ids, pos, query)
        self._model.reveal(ids[pos], self._state)
        self.status = f"match {pos + 1} of {len(ids)} for {query!r}"
        self._relayout(selected="n" + str(ids[pos]))

    def _within_budget(self) -> bool:
        return len(self._model.build_view(self._state)["nodes"]) <= graph_layout.MAX_BOXES

    # ----- display -----------------------------------------------------------------------

    def static_html(self) -> str:
        """Self-contained HTML (inline SVG, or the error box) of the current view."""
        if self.error:
            return svg.error_html(self.error, self.title)
        return svg.graph_html(self.view, self.title)

    def _plain(self) -> str:
        if self.error:
            return f"{self.title}: error: {self.error}"
        shown = len(self.view.get("nodes", []))
        return f"{self.title}: {self.view.get('total_nodes', shown)} nodes, {shown} boxes shown"

    def _repr_mimebundle_(self, **kwargs):
        bundle = super()._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        data["text/plain"] = self._plain()
        data["text/html"] = self.static_html()
        return bundle

    def _update_display(self) -> None:
        if self._handle is not None:
            self._handle.update(self)

    def display(self) -> None:
        """Display in the current output area (updated in place by ``refresh()``)."""
        from IPython.display import display  # noqa: PLC0415

        self._handle = display(self, display_id=True)

    def auto_refresh(self, enabled: bool = True) -> None:
        """Refresh after every cell run (IPython ``post_run_cell``), or stop doing so."""
        try:
            from IPython import get_ipython  # noqa: PLC0415
        except ImportError:
            return
        shell = get_ipython()
        if shell is None:
            return
        if self._shell_hook is not None:
            try:
                shell.events.unregister("post_run_cell", self._shell_hook)
            except ValueError:
                pass
            self._shell_hook = None
        if enabled:
            self._shell_hook = _weak_refresher(self, shell)
            shell.events.register("post_run_cell", self._shell_hook)


def _weak_refresher(widget: GraphWidget, shell):
    """A post_run_cell callback that holds the widget weakly and removes itself when gone."""
    ref = weakref.ref(widget)

    def post_run_cell(_result=None):
        target = ref()
        if target is None or target.comm is None:
            try:
                shell.events.unregister("post_run_cell", post_run_cell)
            except ValueError:
                pass
            return
        target.refresh()

    return post_run_cell


def _graph_version(graph: dict):
    """A cheap fingerprint that changes when the graph grows or its counts change."""
    nodes = graph.get("nodes") or []
    return (len(nodes), len(graph.get("branches") or []),
            sum(int(n.get("count") or 0) for n in nodes),
            sum(float(n.get("time_us") or 0.0) for n in nodes))


def show_graph(region=None, graph=None, auto_refresh: bool = True) -> None:
    """Display the TraceGraph of ``region`` (default: the most recently active region).

    Pass ``graph`` (graph JSON) to show a given graph instead. Errors (no engine, no such
    region, an empty graph, an unknown JSON format or version) are shown in the output
    area as a message; nothing is raised. With ``auto_refresh`` the view re-reads its
    region after every cell, so it follows a growing graph. Returns None, so that a call
    ending a cell is not displayed twice; keep a ``GraphWidget`` for programmatic use.
    """
    widget = GraphWidget(graph=graph, region=region)
    widget.display()
    if graph is None and auto_refresh:
        widget.auto_refresh(True)
