"""Memory the program writes without the dispatcher (coexec/src/external_memory.h).

A numpy array's memory (torch.from_numpy, torch.as_tensor) and a tensor's memory while a
numpy view of it lives (Tensor.numpy()) can change between two ops with no op telling the
engine. The GraphRunner is held (a test hook) for each whole iteration, so a queued op
cannot have read its input before the program writes the memory again: an engine that
queued such reads unprotected gives wrong values here every time.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import terra
from terra.engine import engine
from engine_programs import eager_iteration, fresh_engine, region_stats, terra_iteration

STEPS = 10


def _holding(iteration, hold):
    """`iteration`, with the GraphRunner held for its whole body when `hold`."""
    class Held:
        def __init__(self, name):
            self.inner = iteration(name)

        def __enter__(self):
            value = self.inner.__enter__()
            if hold:
                engine._core._hold_runner(True)
            return value

        def __exit__(self, *exc):
            return self.inner.__exit__(*exc)

    return Held


def _run(program, name):
    """(eager result, co-executed result, region stats)."""
    eager = program(eager_iteration)
    fresh_engine()
    try:
        coexecuted = program(_holding(terra_iteration, True))
    finally:
        engine._core._hold_runner(False)
        terra.sync()
    return eager, coexecuted, region_stats(name)


def _assert_coexecuted_as_eager(program, name) -> dict:
    """Runs `program` both ways; asserts equal results and co-execution; returns the stats."""
    eager, coexecuted, stats = _run(program, name)
    assert len(eager) == len(coexecuted)
    for a, b in zip(eager, coexecuted):
        assert torch.equal(torch.as_tensor(a), torch.as_tensor(b))
    assert stats["iterations_coexecuted"] >= STEPS // 2, terra.explain()
    return stats


def _refilled_buffer(iteration):
    """A numpy buffer refilled every step, read through torch.from_numpy and as_tensor."""
    w = torch.linspace(-1, 1, 64).reshape(16, 4)
    buffer = np.zeros((8, 16), dtype=np.float32)
    target = np.zeros((8, 4), dtype=np.float32)
    outs = []
    for step in range(STEPS):
        buffer[:] = step + np.arange(16, dtype=np.float32)
        target[:] = -step
        with iteration("refilled"):
            x = torch.from_numpy(buffer)
            y = torch.as_tensor(target)
            outs.append(torch.tanh(x @ w * 0.01) - y)
    return outs


@pytest.mark.timeout(60)
def test_a_refilled_numpy_buffer_is_read_as_eager_reads_it():
    stats = _assert_coexecuted_as_eager(_refilled_buffer, "refilled")
    assert stats["fetches"] == 0  # small: copied for the runner, not run at once


def _written_within_an_iteration(iteration):
    """The buffer changes between two ops of one iteration."""
    w = torch.linspace(-1, 1, 16).reshape(4, 4)
    buffer = np.ones((4, 4), dtype=np.float32)
    outs = []
    for step in range(STEPS):
        with iteration("within"):
            x = torch.from_numpy(buffer)
            first = x @ w
            buffer *= 2.0
            second = x @ w
            buffer[:] = step
            outs.append(first + second * 10)
    return outs


@pytest.mark.timeout(60)
def test_a_buffer_written_between_two_ops_of_an_iteration():
    _assert_coexecuted_as_eager(_written_within_an_iteration, "within")


def _large_buffer(iteration):
    """More than a snapshot copies (1 MiB): the op runs at once instead."""
    buffer = np.zeros((300, 1024), dtype=np.float32)
    w = torch.linspace(-1, 1, 1024).reshape(1024, 1)
    outs = []
    for step in range(STEPS):
        buffer[:] = step
        with iteration("large"):
            outs.append(torch.from_numpy(buffer) @ w)
    return outs


@pytest.mark.timeout(60)
def test_a_large_buffer_is_read_at_once():
    stats = _assert_coexecuted_as_eager(_large_buffer, "large")
    assert stats["fetches"] >= stats["iterations_coexecuted"]


def _numpy_view_kept(iteration):
    """Tensor.numpy() taken once; the program writes through it every step."""
    state = torch.linspace(0, 1, 16).reshape(4, 4)
    w = torch.linspace(-1, 1, 16).reshape(4, 4)
    view = state.numpy()
    outs = []
    for step in range(STEPS):
        with iteration("view"):
            outs.append(torch.tanh(state @ w))
            view[0, :] = step
    return outs + [state.clone()]


@pytest.mark.timeout(60)
def test_memory_written_through_a_numpy_view_is_read_as_eager_reads_it():
    _assert_coexecuted_as_eager(_numpy_view_kept, "view")


def _inplace_on_numpy_memory(iteration):
    """An in-place op writes numpy memory; numpy reads it right after, without a hook."""
    buffer = np.ones(8, dtype=np.float32)
    x = torch.from_numpy(buffer)
    sums = []
    for step in range(STEPS):
        with iteration("inplace"):
            x.mul_(1.5).add_(step)
            sums.append(float(buffer.sum()))
    return sums


@pytest.mark.timeout(60)
def test_an_inplace_op_on_numpy_memory_is_visible_to_numpy_at_once():
    eager, coexecuted, stats = _run(_inplace_on_numpy_memory, "inplace")
    assert coexecuted == eager
    assert stats["iterations_coexecuted"] >= STEPS // 2, terra.explain()
