"""SpeedupView: per-iteration time of a region, traced vs co-executed, updated in place.

Fed with iteration records (docs/architecture.md "Iteration records"):

    {"region": "train.py:42", "iteration": 7, "seconds": 0.0123,
     "phase": "traced" | "coexecuted", "fallback": False}

It is a plain display (text/html with an inline SVG chart, and text/plain), shown
once with ``display(..., display_id=True)`` and updated in place with
``update_display_data`` at most ``max_updates_per_s`` times a second, so it looks
the same live, in a saved notebook and in an nbconvert HTML export.
"""

from __future__ import annotations

import html
import statistics
import time

__all__ = ["SpeedupView", "validate_record"]

PHASES = ("traced", "coexecuted")


def validate_record(record) -> dict:
    """Check one iteration record; return it normalised or raise ValueError."""
    if not isinstance(record, dict):
        raise ValueError(f"iteration record must be a dict, got {type(record).__name__}")
    phase = record.get("phase")
    if phase not in PHASES:
        raise ValueError(f"iteration record phase must be one of {PHASES}, got {phase!r}")
    seconds = float(record["seconds"])
    if seconds < 0:
        raise ValueError("iteration record seconds must be >= 0")
    return {"region": record.get("region"), "iteration": int(record["iteration"]),
            "seconds": seconds, "phase": phase, "fallback": bool(record.get("fallback", False))}


class SpeedupView:
    """A small live chart of iteration times; ``add(record)`` feeds it."""

    # How many views this process displayed so far: the Terra kernel's automatic chart
    # (terra/ipython.py) stays away from a cell that displayed its own view.
    displayed = 0

    def __init__(self, region=None, max_updates_per_s: float = 4.0, clock=time.monotonic):
        """Chart the records of ``region`` (None: every record given)."""
        self.region = region
        self.records: list = []
        self.min_interval = 1.0 / max_updates_per_s
        self._clock = clock
        self._last_update = None
        self._dirty = False
        self._handle = None
        self._unsubscribe = None
        self.updates_sent = 0
        self.metadata = None  # display metadata sent with the display and every update

    # ----- feeding -------------------------------------------------------------------

    def add(self, record) -> None:
        """Append one iteration record; refresh the display if the rate limit allows."""
        rec = validate_record(record)
        if self.region is not None and rec["region"] not in (None, self.region):
            return
        self.records.append(rec)
        self._dirty = True
        now = self._clock()
        if self._last_update is None or now - self._last_update >= self.min_interval:
            self._push(now)

    __call__ = add

    def flush(self) -> None:
        """Show every record added so far (call at the end of the cell)."""
        if self._dirty:
            self._push(self._clock())

    def attach(self):
        """Subscribe to the engine's iteration records (terra.add_iteration_listener)."""
        import terra  # noqa: PLC0415

        add = getattr(terra, "add_iteration_listener", None)
        if add is None:
            raise RuntimeError("this build of terra does not publish iteration records "
                               "(terra.add_iteration_listener is missing)")
        add(self.add)
        remove = getattr(terra, "remove_iteration_listener", None)
        self._unsubscribe = (lambda: remove(self.add)) if remove else None
        return self

    def detach(self) -> None:
        """Stop listening to the engine; show what was collected."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self.flush()

    def __enter__(self):
        self.display()
        return self

    def __exit__(self, *exc):
        self.detach()
        return False

    # ----- summary -------------------------------------------------------------------

    def summary(self) -> dict:
        """Median traced/co-executed seconds, running speedup, fallbacks, start of co-exec."""
        traced = [r["seconds"] for r in self.records if r["phase"] == "traced"]
        coexec = [r["seconds"] for r in self.records if r["phase"] == "coexecuted"]
        start = next((r["iteration"] for r in self.records if r["phase"] == "coexecuted"), None)
        med_t = statistics.median(traced) if traced else None
        med_c = statistics.median(coexec) if coexec else None
        speedup = med_t / med_c if med_t and med_c else None
        return {"iterations": len(self.records), "traced": len(traced),
                "coexecuted": len(coexec), "traced_median_s": med_t,
                "coexecuted_median_s": med_c, "speedup": speedup, "coexec_start": start,
                "fallbacks": sum(1 for r in self.records if r["fallback"])}

    def text(self) -> str:
        """The text/plain form."""
        s = self.summary()
        if not s["iterations"]:
            return "Terra speedup: no iterations yet"
        parts = [f"Terra speedup: {s['iterations']} iterations ({s['traced']} traced, "
                 f"{s['coexecuted']} co-executed)"]
        if s["traced_median_s"] is not None:
            parts.append(f"traced median {s['traced_median_s'] * 1e3:.2f} ms")
        if s["coexecuted_median_s"] is not None:
            parts.append(f"co-executed median {s['coexecuted_median_s'] * 1e3:.2f} ms "
                         f"(from iteration {s['coexec_start']})")
        parts.append(f"speedup {s['speedup']:.2f}x" if s["speedup"] else "speedup n/a")
        parts.append(f"{s['fallbacks']} fallbacks")
        return ", ".join(parts)

    # ----- display -------------------------------------------------------------------

    def _repr_mimebundle_(self, **kwargs):
        return {"text/plain": self.text(), "text/html": self.html()}

    def display(self):
        """Show the chart below the running cell; later records update it in place."""
        from IPython.display import display  # noqa: PLC0415

        extra = {"metadata": self.metadata} if self.metadata is not None else {}
        self._handle = display(self, display_id=True, **extra)
        SpeedupView.displayed += 1
        self._last_update = self._clock()
        self._dirty = False
        return self

    def _push(self, now) -> None:
        self._last_update = now
        self._dirty = False
        if self._handle is not None:
            if self.metadata is not None:
                self._handle.update(self, metadata=self.metadata)
            else:
                self._handle.update(self)
            self.updates_sent += 1

    def html(self) -> str:
        """text/html: a title line and an inline SVG chart (self-contained)."""
        return (f'<div class="terra-speedup" style="font:12px sans-serif">'
                f'<div>{html.escape(self.text())}</div>{self.svg()}</div>')

    def svg(self, width: int = 560, height: int = 180) -> str:
        """The chart: one dot per iteration (grey traced, green co-executed, red × fallback)."""
        left, right, top, bottom = 48, 12, 10, 26
        pw, ph = width - left - right, height - top - bottom
        recs = self.records
        out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="terra-speedup-svg" '
               f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
               f'style="font:10px sans-serif">',
               f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fff" '
               f'stroke="#cbd5e0"/>']
        if not recs:
            out.append(f'<text x="{left + 8}" y="{top + 20}">no iterations yet</text></svg>')
            return "".join(out)
        first, last = recs[0]["iteration"], recs[-1]["iteration"]
        span = max(last - first, 1)
        ymax = max(r["seconds"] for r in recs) * 1.1 or 1.0

        def px(it):
            return left + (it - first) / span * pw

        def py(sec):
            return top + ph - sec / ymax * ph

        for frac in (0.0, 0.5, 1.0):
            y = top + ph - frac * ph
            out.append(f'<text x="{left - 4}" y="{y + 3:.1f}" text-anchor="end">'
                       f'{ymax * frac * 1e3:.1f} ms</text>')
        out.append(f'<text x="{left}" y="{height - 8}">iteration {first}</text>'
                   f'<text x="{left + pw}" y="{height - 8}" text-anchor="end">{last}</text>')
        start = self.summary()["coexec_start"]
        if start is not None:
            x = px(start)
            out.append(f'<line class="coexec-start" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" '
                       f'y2="{top + ph}" stroke="#38a169" stroke-dasharray="4,3"/>'
                       f'<text x="{x + 3:.1f}" y="{top + 10}" fill="#2f855a">co-execution</text>')
        step = max(1, len(recs) // 400)  # keep the SVG small for long loops
        for r in recs[::step]:
            x, y = px(r["iteration"]), py(r["seconds"])
            if r["fallback"]:
                out.append(f'<path class="fallback" d="M{x - 4:.1f},{y - 4:.1f}l8,8m0,-8l-8,8" '
                           f'stroke="#e53e3e" stroke-width="2"/>')
            else:
                color = "#38a169" if r["phase"] == "coexecuted" else "#718096"
                out.append(f'<circle class="{r["phase"]}" cx="{x:.1f}" cy="{y:.1f}" r="2.5" '
                           f'fill="{color}"/>')
        lx = left + pw - 220
        out.append(f'<g transform="translate({lx},{top + 4})">'
                   '<circle cx="4" cy="4" r="3" fill="#718096"/><text x="10" y="7">traced</text>'
                   '<circle cx="60" cy="4" r="3" fill="#38a169"/>'
                   '<text x="66" y="7">co-executed</text>'
                   '<path d="M140,1l6,6m0,-6l-6,6" stroke="#e53e3e" stroke-width="2"/>'
                   '<text x="150" y="7">fallback</text></g>')
        out.append("</svg>")
        return "".join(out)
