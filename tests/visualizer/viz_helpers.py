"""Helpers of the visualizer tests (a uniquely named module: tests/ has no packages)."""
import shutil

from terra.widgets import layout


def available_backends():
    """Layout backends present here: the `dot` program and, if built, terra._C's libgvc."""
    found = []
    if shutil.which("dot"):
        found.append("dot")
    if layout._native() is not None:
        found.append("libgvc")
    return found
