"""SpeedupView: records, summary, throttled in-place updates, static chart."""
import statistics
import time

import pytest
import torch

from terra.widgets import SpeedupView
from terra.widgets.speedup import validate_record


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Handle:
    def __init__(self):
        self.updates = []

    def update(self, obj):
        self.updates.append(obj._repr_mimebundle_())


def timed_records(n=12, traced=2):
    """Real per-iteration times of a small torch loop (phases as the engine would tag them)."""
    x = torch.randn(64, 64)
    out = []
    for i in range(n):
        start = time.perf_counter()
        for _ in range(5):
            x = torch.tanh(x @ x.T / 64)
        out.append({"region": "cell-1:3", "iteration": i,
                    "seconds": time.perf_counter() - start,
                    "phase": "traced" if i < traced else "coexecuted",
                    "fallback": i == 7})
    return out


def test_summary_matches_the_records():
    view = SpeedupView()
    records = timed_records()
    for r in records:
        view.add(r)
    s = view.summary()
    traced = [r["seconds"] for r in records if r["phase"] == "traced"]
    coexec = [r["seconds"] for r in records if r["phase"] == "coexecuted"]
    assert s["traced_median_s"] == statistics.median(traced)
    assert s["coexecuted_median_s"] == statistics.median(coexec)
    assert s["speedup"] == pytest.approx(statistics.median(traced) / statistics.median(coexec))
    assert s["coexec_start"] == 2 and s["fallbacks"] == 1
    assert f"speedup {s['speedup']:.2f}x" in view.text()


def test_updates_in_place_at_most_a_few_times_per_second():
    clock = FakeClock()
    view = SpeedupView(max_updates_per_s=4, clock=clock)
    view._handle = Handle()
    view._last_update = 0.0
    for i, r in enumerate(timed_records(n=40)):
        clock.now = i * 0.01  # 100 iterations per second
        view.add(r)
    # 0.4 s of records at <= 4 updates/s: at most 2 updates (t=0.25 and maybe t=0.0 excluded)
    assert 1 <= len(view._handle.updates) <= 2
    view.flush()
    last = view._handle.updates[-1]
    assert "40 iterations" in last["text/plain"]
    assert last["text/html"].count('<circle class="') == 39  # one fallback drawn as ×


def test_chart_marks_phases_start_and_fallbacks():
    view = SpeedupView()
    for r in timed_records():
        view.add(r)
    html = view.html()
    assert "<svg" in html and 'class="coexec-start"' in html
    assert html.count('class="traced"') == 2
    assert html.count('class="coexecuted"') == 9 and html.count('class="fallback"') == 1


def test_region_filter_and_empty_view():
    view = SpeedupView(region="other")
    for r in timed_records(n=3):
        view.add(r)
    assert view.records == [] and "no iterations yet" in view.text()
    assert "no iterations yet" in view.html()


@pytest.mark.parametrize("record, message", [
    ({"iteration": 0, "seconds": 0.1, "phase": "eager"}, "phase must be one of"),
    ({"iteration": 0, "seconds": -1.0, "phase": "traced"}, "seconds must be >= 0"),
    ("not a dict", "must be a dict"),
])
def test_bad_records_are_rejected(record, message):
    with pytest.raises(ValueError, match=message):
        validate_record(record)
