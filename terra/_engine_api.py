"""The one place where the Python layer (regions, `terra run`, `%terra`) reaches the engine.

The engine is the singleton object of `terra._C` / `terra.engine` with the low-level
API of docs/architecture.md ("Low-level engine API"): region, begin_iteration,
end_iteration, abort_iteration, sync, quiesce, stats, graph_json, set_enabled, is_enabled,
reset, explain, set_module_path, phase, last_iteration_repeated.

When the compiled engine cannot be imported, `get()` returns None and the Python layer
stays inert: programs still run, eagerly.
"""

from __future__ import annotations

import importlib
import warnings

_MISSING = object()


class _Lookup:
    """Caches the engine object once found (the only state of this module)."""

    engine = _MISSING
    error: str | None = None


def _find_engine():
    """Returns the engine singleton from wherever the binding exposes it."""
    # The module itself (terra/__init__.py may re-export a name `engine`).
    engine_module = importlib.import_module("terra.engine")

    for name in ("ENGINE", "engine", "_engine"):
        candidate = getattr(engine_module, name, None)
        if candidate is not None and hasattr(candidate, "begin_iteration"):
            return candidate
    getter = getattr(engine_module, "get_engine", None)
    if callable(getter):
        return getter()
    raise ImportError("terra.engine exposes no object with begin_iteration()")


def get():
    """The engine singleton, or None when the compiled engine is unavailable."""
    if _Lookup.engine is _MISSING:
        try:
            _Lookup.engine = _find_engine()
        except Exception as error:  # ImportError, or a broken build: run eagerly
            _Lookup.engine = None
            _Lookup.error = f"{type(error).__name__}: {error}"
    return _Lookup.engine


def unavailable_reason() -> str | None:
    """Why `get()` returned None (None when the engine is there)."""
    get()
    return _Lookup.error


def warn_unavailable() -> None:
    """Tells the user, through `warnings`, that co-execution is off for lack of an engine."""
    reason = unavailable_reason()
    if reason is not None:
        warnings.warn(f"terra: the co-execution engine is unavailable ({reason}); "
                      "running eagerly", RuntimeWarning, stacklevel=2)


def stats() -> dict:
    """The engine's stats dict, or an empty dict without an engine."""
    engine = get()
    return dict(engine.stats()) if engine is not None else {}


def region_stats(region_id: int) -> dict | None:
    """The per-region entry of stats() for `region_id` (None when not listed)."""
    for entry in stats().get("regions", []):
        if entry.get("id") == region_id:
            return entry
    return None
