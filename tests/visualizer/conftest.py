"""Fixtures of the visualizer tests."""
import pytest

from terra.widgets.synthetic import transformer_graph


@pytest.fixture
def graph():
    """A generated transformer-step graph JSON (4 identical blocks, a branch, fetches)."""
    return transformer_graph(layers=4)
