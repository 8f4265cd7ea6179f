"""Backpressure: Python never runs unboundedly ahead of the GraphRunner.

Under co-execution no kernel runs on the Python side, so a loop of large ops confirms ops far
faster than the runner executes them. Without a bound the queue grows without limit (memory)
and a KeyboardInterrupt then waits for the whole queue to drain (practically a hang).
"""

import contextlib
import os
import pathlib
import subprocess
import sys
import textwrap
import time

import pytest
import torch

import terra
from terra.engine import engine
from engine_programs import fresh_engine

REPO = pathlib.Path(__file__).resolve().parents[2]

INTERRUPTED_LOOP = textwrap.dedent("""
    import os, signal, sys, threading, time
    import torch
    import terra
    from terra.engine import engine

    torch.manual_seed(0)
    a = torch.randn(1000, 1000)
    expected = a @ a  # eager: outside any iteration, nothing pending
    sent = []

    def interrupt():
        sent.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGINT)

    threading.Timer(1.0, interrupt).start()
    peak = 0
    try:
        while True:
            with terra.iteration("spin"):
                b = a @ a
            peak = max(peak, engine.queued())
    except KeyboardInterrupt:
        terra.sync()
        returned = time.monotonic() - sent[0]
    c = a @ a  # the next computation after the interrupt
    stats = terra.stats()
    print(returned, peak, stats["iterations_coexecuted"], stats["fallbacks"],
          int(torch.equal(b, expected)), int(torch.equal(c, expected)))
""")


@pytest.mark.timeout(120)
def test_keyboard_interrupt_in_coexecuted_loop_returns_promptly(tmp_path):
    script = tmp_path / "spin.py"
    script.write_text(INTERRUPTED_LOOP)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    for name in ("TERRA_DEBUG", "TERRA_MAX_QUEUED", "TERRA_MAX_QUEUED_MS", "TERRA_DISABLE"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env=env, timeout=90)
    assert done.returncode == 0, done.stderr
    returned, peak, coexecuted, fallbacks, b_ok, c_ok = done.stdout.split()
    assert float(returned) < 5.0, f"interrupt took {returned} s to return"
    assert int(coexecuted) > 0 and int(fallbacks) == 0  # the loop really co-executed
    assert int(peak) <= 512  # TERRA_MAX_QUEUED's default
    assert b_ok == "1" and c_ok == "1"


@contextlib.contextmanager
def _queue_bounds(**bounds):
    """The engine configured with these queue bounds for the block, restored after it."""
    saved = engine.settings()
    engine.configure(**bounds)
    try:
        yield
    finally:
        engine.configure(**{name: saved[name] for name in bounds})


def test_outstanding_ops_never_exceed_the_bound():
    fresh_engine()
    with _queue_bounds(max_queued=4, max_queued_ms=0):
        torch.manual_seed(0)
        a = torch.randn(200, 200)
        w = torch.randn(200, 200)
        peak = 0
        results = []
        for _ in range(60):
            with terra.iteration("bounded"):
                results.append(torch.tanh(a @ w) * 0.5)
            peak = max(peak, engine.queued())
        terra.sync()
    expected = torch.tanh(a @ w) * 0.5
    assert all(torch.equal(r, expected) for r in results)
    stats = terra.stats()
    assert stats["iterations_coexecuted"] >= 50 and stats["fallbacks"] == 0
    assert 0 < peak <= 4


def test_lag_bound_limits_queued_time():
    """The time bound alone (no count bound) keeps the queue short once op times are known.

    Before the first op finished the estimate is only the running op's elapsed time, so the
    first iterations may queue many ops; the later ones must stay near 20 ms of work.
    """
    fresh_engine()
    with _queue_bounds(max_queued=0, max_queued_ms=20):
        torch.manual_seed(0)
        a = torch.randn(800, 800)
        op_seconds = _eager_seconds(lambda: a @ a)
        queued = []
        for _ in range(300):
            with terra.iteration("lag"):
                b = a @ a
            queued.append(engine.queued())
        terra.sync()
    assert torch.equal(b, a @ a)
    assert terra.stats()["iterations_coexecuted"] > 250
    # About 20 ms of work stays queued (a factor 3 for timing noise); unbounded it is ~300.
    bound = 3 * 0.020 / op_seconds + 2
    assert max(queued[-100:]) <= bound, (op_seconds, queued[-100:])


def _eager_seconds(op, repeats: int = 20) -> float:
    """Mean eager run time of `op` (after a warm-up call)."""
    op()
    start = time.perf_counter()
    for _ in range(repeats):
        op()
    return (time.perf_counter() - start) / repeats
