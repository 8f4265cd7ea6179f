"""Iteration records: one dict per finished iteration, delivered to registered listeners.

The record (docs/architecture.md, "Iteration records"):

    {"region": name, "region_id": int, "kind": "loop" | "cell" | "explicit",
     "iteration": int, "seconds": float, "phase": "traced" | "coexecuted",
     "fallback": bool, "graph_nodes": int}

How the fields are determined, exactly (from the engine's per-region counters, read
before and after the iteration; the engine changes them only inside `end_iteration`):

- `phase` is "coexecuted" when the iteration raised the region's `iterations_coexecuted`
  counter, else "traced". An iteration that began co-executing and fell back part-way
  is counted by the engine as traced (its rest ran eagerly while tracing), so it is
  "traced" here too, and the counts of records always agree with `terra.stats()`.
- `fallback` is True when the region's `fallbacks` counter grew during the iteration.
- `iteration` is the region's number of completed iterations (traced, co-executed, or
  without any tensor op) before this one: 0-based, continued across re-runs of a cell and
  runs of a loop. An iteration without tensor ops is "traced" (it ran as Python alone).
- `graph_nodes` is the size of the region's graph after the iteration (0: the loop has
  run no tensor op so far; the kernel's chart ignores such loops).
- `seconds` is wall time from the begin to the end of the iteration on the Python
  thread (GraphRunner work still pending at the end is not included).

Only completed iterations make records; an aborted one (an exception left it, or an
enclosing candidate gave way to an inner loop) makes none. With no listener registered,
the cost per iteration is one truthiness test (`FEED.listeners`).

Listeners are called on the thread that runs the program, right after the iteration
ended; an exception raised by a listener is reported as a warning and never reaches
the program.
"""

from __future__ import annotations

import time
import warnings

__all__ = ["FEED", "IterationFeed", "add_iteration_listener", "remove_iteration_listener"]

_COUNTERS = ("iterations_traced", "iterations_coexecuted", "fallbacks", "graph_nodes",
             "iterations_without_ops")


class IterationFeed:
    """The registered listeners and the bookkeeping of one open iteration per region."""

    def __init__(self) -> None:
        self.listeners: list = []

    def add(self, listener) -> None:
        """Registers `listener(record)`; registering the same callable twice is a no-op."""
        if not callable(listener):
            raise TypeError("terra: an iteration listener must be callable")
        if listener not in self.listeners:
            self.listeners.append(listener)

    def remove(self, listener) -> None:
        """Unregisters `listener` (no error when it was not registered)."""
        try:
            self.listeners.remove(listener)
        except ValueError:
            pass

    def open(self, engine, region_id: int):
        """At iteration begin (only when listeners exist): a token for `close`."""
        return (_region_counters(engine, region_id), time.perf_counter())

    def close(self, engine, region_id: int, token, name: str, kind: str) -> None:
        """At iteration end: builds the record from the counter deltas and delivers it."""
        before, started = token
        seconds = time.perf_counter() - started
        after = _region_counters(engine, region_id)
        if after is None or before is None:
            return  # the engine forgot the region (reset inside the iteration)
        coexecuted = after[1] > before[1]
        record = {"region": name, "region_id": region_id, "kind": kind,
                  "iteration": before[0] + before[1] + before[4], "seconds": seconds,
                  "phase": "coexecuted" if coexecuted else "traced",
                  "fallback": after[2] > before[2], "graph_nodes": after[3]}
        self.deliver(record)

    def deliver(self, record: dict) -> None:
        """Calls every listener with `record`; a failing listener only warns."""
        for listener in list(self.listeners):
            try:
                listener(record)
            except Exception as error:  # a broken view must never break the program
                warnings.warn(f"terra: iteration listener {listener!r} failed: {error!r}",
                              RuntimeWarning, stacklevel=2)


def _region_counters(engine, region_id: int) -> tuple[int, ...] | None:
    """The `_COUNTERS` of a region."""
    for entry in engine.stats().get("regions", []):
        if entry.get("id") == region_id:
            return tuple(int(entry.get(key, 0)) for key in _COUNTERS)
    return None


FEED = IterationFeed()


def add_iteration_listener(listener) -> None:
    """Calls `listener(record)` after each finished iteration (see this module's doc)."""
    FEED.add(listener)


def remove_iteration_listener(listener) -> None:
    """Stops calling `listener`."""
    FEED.remove(listener)
