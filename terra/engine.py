"""The engine object of the Python side: `terra.engine.engine`, the one instance.

It forwards the low-level API of docs/architecture.md ("Low-level engine API") to the C++
engine in `terra._C`, configures it from terra.config, installs the fetch hooks
(terra/hooks.py) and syncs at interpreter exit. The Python layer (regions, `terra run`, the
IPython extension) uses only this object; users use the functions of `terra`.
"""

from __future__ import annotations

import atexit
import json
import os
import sysconfig

import torch  # loads LibTorch before terra._C links against it

from terra import _C, config, hooks


def _library_prefixes() -> list[str]:
    """Paths whose frames are not user code for source locations: torch, terra, stdlib."""
    prefixes = [os.path.dirname(torch.__file__) + os.sep,
                os.path.dirname(os.path.abspath(__file__)) + os.sep]
    for key in ("stdlib", "platstdlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            prefixes.append(path + os.sep)
    return prefixes


class Engine:
    """The process's co-execution engine (a thin, documented face of terra._C)."""

    def __init__(self) -> None:
        self._core = _C.engine()
        self._core.configure(config.engine_settings())
        # Mirrored here: the region policy asks at every loop run, and the call into the
        # core costs more than the rest of a passive run (terra/regions.py).
        self._enabled = self._core.is_enabled()
        if hasattr(os, "register_at_fork"):  # a forked child's engine turns itself off
            os.register_at_fork(after_in_child=self._refresh_enabled)
        _C.set_library_prefixes(_library_prefixes())
        if config.get("TERRA_HOOKS"):
            hooks.install(self._core)
        atexit.register(self._sync_at_exit)

    # -- regions and iterations ---------------------------------------------------------
    def region(self, key: str, name: str, file: str, line: int) -> int:
        """Finds the region with `key`, or creates it; returns its id."""
        return self._core.region(key, name, file, int(line))

    def begin_iteration(self, region_id: int) -> None:
        """Starts an iteration of the region on this thread (nested begins are ignored)."""
        self._core.begin_iteration(region_id)

    def end_iteration(self) -> None:
        """Ends the current iteration; may switch its region into co-execution."""
        self._core.end_iteration()

    def abort_iteration(self) -> None:
        """An exception left the iteration: what Python issued runs as eager would have."""
        self._core.abort_iteration()

    def phase(self, region_id: int) -> str:
        """'tracing', 'coexecuting' or 'disabled'."""
        return self._core.phase(region_id)

    def last_iteration_repeated(self, region_id: int) -> bool:
        """True when the region's last iteration was already contained in its graph."""
        return self._core.last_iteration_repeated(region_id)

    def set_module_path(self, path: str) -> None:
        """The nn.Module path of the code running now ("model/encoder/0")."""
        self._core.set_module_path(path)

    # -- state --------------------------------------------------------------------------
    def sync(self) -> None:
        """Waits until the GraphRunner ran every confirmed op (raises its errors)."""
        self._core.sync()

    def quiesce(self) -> None:
        """A sync, after which the idle GraphRunner gives its OpenMP team back at once, so
        that eager code that follows runs as without Terra."""
        self._core.quiesce()

    def pending(self) -> bool:
        """True while the GraphRunner has confirmed work left."""
        return self._core.pending()

    def queued(self) -> int:
        """Confirmed ops the GraphRunner has not finished yet (at most TERRA_MAX_QUEUED)."""
        return self._core.queued()

    def stats(self) -> dict:
        """DESIGN §1 stats summed over regions; `regions` lists one dict per region."""
        return self._core.stats()

    def graph_json(self, region_id: int | None = None) -> str:
        """Graph JSON (docs/architecture.md) of a region; default: the most recent one."""
        return self._core.graph_json(None if region_id is None or region_id < 0
                                     else region_id)

    def set_enabled(self, enabled: bool) -> None:
        """Turns co-execution on or off (after a sync)."""
        self._core.set_enabled(bool(enabled))
        self._enabled = self._core.is_enabled()

    def is_enabled(self) -> bool:
        return self._enabled

    def _refresh_enabled(self) -> None:
        self._enabled = self._core.is_enabled()

    def reset(self) -> None:
        """Forgets every region and graph."""
        self._core.reset()

    def explain(self) -> str:
        """Op, source line and reason of the last fallback."""
        return self._core.explain()

    def current_region(self) -> int:
        """Id of the most recently active region, or -1."""
        return self._core.current_region()

    def configure(self, **settings) -> None:
        """Changes engine knobs by their EngineConfig names (tests, benchmarks)."""
        self._core.configure(settings)
        self._enabled = self._core.is_enabled()

    def settings(self) -> dict:
        return self._core.config()

    def graph(self, region_id: int | None = None) -> dict:
        """The graph JSON of a region, parsed ({} when there is no region)."""
        text = self.graph_json(region_id)
        return json.loads(text) if text else {}

    def _sync_at_exit(self) -> None:
        try:
            self._core.sync()
        except Exception:  # the program is over; nothing left to report it to
            pass


engine = Engine()
