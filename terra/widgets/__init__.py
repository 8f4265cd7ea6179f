"""Terra's notebook views: the graph visualizer widget and the live speedup chart.

``show_graph(region=None)`` displays a region's TraceGraph (``GraphWidget``);
``SpeedupView`` charts per-iteration times. Both also carry a self-contained
text/html (inline SVG) and text/plain, so exported notebooks show them offline.
"""

from .graph_widget import GraphWidget, show_graph
from .speedup import SpeedupView
from .view import GraphFormatError

__all__ = ["GraphWidget", "SpeedupView", "GraphFormatError", "show_graph"]
