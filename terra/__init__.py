"""Terra: imperative PyTorch programs, co-executed with a C++ graph runner.

The user API (docs/architecture.md, "Engine API"):

    with terra.iteration():      # the body is one iteration of a region
        ...
    @terra.step                  # each call is one iteration of the function's region
    def train_step(batch): ...
    terra.stats(), terra.graph(), terra.explain(), terra.sync()
    terra.disable(), terra.enable(), terra.is_enabled(), terra.reset()
    terra.add_iteration_listener(fn), terra.remove_iteration_listener(fn)

TERRA_DISABLE=1 starts with co-execution off. The engine itself is `terra.engine.engine`.
"""

from __future__ import annotations

import contextlib
import functools
import sys

__all__ = [
    "iteration", "step", "stats", "graph", "explain", "sync", "disable", "enable",
    "is_enabled", "reset", "add_iteration_listener", "remove_iteration_listener",
]
__version__ = "0.1.0"

from terra.iterations import (  # noqa: E402 (no torch: records come from the engine)
    FEED as _FEED,
    add_iteration_listener,
    remove_iteration_listener,
)
from terra.widgets import show_graph  # noqa: E402 (lazy: widgets load on first call)


def _engine():
    from terra.engine import engine  # noqa: PLC0415 (imports torch and terra._C lazily)

    return engine


def _caller_site(depth: int) -> tuple[str, int]:
    frame = sys._getframe(depth + 1)
    return frame.f_code.co_filename, frame.f_lineno


@contextlib.contextmanager
def _iteration_of(key: str, name: str, file: str, line: int):
    engine = _engine()
    region_id = engine.region(key, name, file, line)
    token = _FEED.open(engine, region_id) if _FEED.listeners else None
    engine.begin_iteration(region_id)
    try:
        yield region_id
    except BaseException:
        engine.abort_iteration()
        raise
    engine.end_iteration()
    if token is not None:
        _FEED.close(engine, region_id, token, name, "explicit")


def iteration(region: str | None = None):
    """Context manager: the body is one iteration of `region` (default: the caller's line).

    Iterations of one region repeat: after they did, ops are answered from the region's
    graph and run by the GraphRunner. An exception leaving the body keeps what ran, as
    eager PyTorch would.
    """
    file, line = _caller_site(1)
    key = region if region is not None else f"{file}:{line}"
    return _iteration_of(key, region or f"{file}:{line}", file, line)


def step(function):
    """Decorator: each call of `function` is one iteration of its own region."""
    code = function.__code__
    key = f"{code.co_filename}:{code.co_firstlineno}:{function.__qualname__}"
    name = function.__qualname__

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with _iteration_of(key, name, code.co_filename, code.co_firstlineno):
            return function(*args, **kwargs)

    return wrapper


def stats() -> dict:
    """Stats of DESIGN §1 (iterations_traced, iterations_coexecuted, fallbacks, fetches,
    feeds, graph_nodes, graph_branches, time_python_s, time_graph_s) summed over regions,
    and `regions`: one dict per region with the same keys, its name, file and line."""
    return _engine().stats()


def graph(region: int | str | None = None) -> dict:
    """The graph JSON of a region (docs/architecture.md), parsed: by id, by name or key, or
    (default) the most recently active region. {} when there is none."""
    engine = _engine()
    region_id = None
    if isinstance(region, int):
        region_id = region
    elif isinstance(region, str):
        for entry in engine.stats()["regions"]:
            if region in (entry["name"], entry["key"]):
                region_id = entry["id"]
        if region_id is None:
            raise KeyError(f"terra: no region named {region!r}")
    return engine.graph(region_id)


def explain() -> str:
    """Why the last fallback happened: the op, its source line, expected vs got."""
    return _engine().explain()


def sync() -> None:
    """Waits until the GraphRunner executed everything confirmed."""
    _engine().sync()


def disable() -> None:
    """Turns co-execution off: programs run eagerly."""
    _engine().set_enabled(False)


def enable() -> None:
    """Turns co-execution back on."""
    _engine().set_enabled(True)


def is_enabled() -> bool:
    return _engine().is_enabled()


def reset() -> None:
    """Forgets every region and graph, and the loop policy's decisions about them."""
    from terra import regions  # noqa: PLC0415 (the policy holds engine region ids)

    regions.POLICY.reset()
    _engine().reset()
