"""Terra's notebook views: the graph visualizer widget and the live speedup chart.

``show_graph(region=None)`` displays a region's TraceGraph (``GraphWidget``);
``SpeedupView`` charts per-iteration times. Both also carry a self-contained
text/html (inline SVG) and text/plain, so exported notebooks show them offline.

Imports are lazy: ``import terra`` stays free of ipywidgets/anywidget until a view
is first used.
"""

import importlib

__all__ = ["GraphWidget", "SpeedupView", "GraphFormatError", "show_graph"]

_LAZY = {
    "GraphWidget": ".graph_widget",
    "SpeedupView": ".speedup",
    "GraphFormatError": ".view",
}


def show_graph(region=None, graph=None, auto_refresh: bool = True) -> None:
    """Display the TraceGraph of ``region`` (default: the most recently active one).

    See terra.widgets.graph_widget.show_graph; errors become a message in the output.
    """
    from .graph_widget import show_graph as show  # noqa: PLC0415 (lazy import)

    show(region, graph=graph, auto_refresh=auto_refresh)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
