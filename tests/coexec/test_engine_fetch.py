"""Reads that bypass the dispatcher (numpy, tolist, print, data_ptr...) fetch first.

The GraphRunner is held (a test hook) while the reads happen, so every read below meets
a placeholder whose memory has not been written: without its fetch hook it would see
garbage, and TERRA_DEBUG_POISON shows exactly that through an unhooked path.
"""

import contextlib
import ctypes

import numpy as np
import pytest
import torch

import terra
from terra.engine import engine
from engine_programs import batches, fresh_engine, mlp, region_stats


def _forward(model, x):
    with torch.no_grad():  # outputs Python may read directly (numpy() needs no grad)
        return torch.tanh(model(x)) * 3.0


def _warm_region(model, data, name):
    """Runs iterations until the region co-executes; returns the region id."""
    for x, _ in data:
        x = x.clone()  # a fresh tensor every iteration, as the reads below use
        with terra.iteration(name) as region_id:
            _forward(model, x)
        if engine.phase(region_id) == "coexecuting":
            return region_id
    raise AssertionError("region never co-executed: " + terra.explain())


@pytest.fixture
def held_runner():
    """Holds the GraphRunner; any fetch releases it."""
    yield lambda: engine._core._hold_runner(True)
    engine._core._hold_runner(False)
    terra.sync()


@pytest.mark.timeout(60)
def test_hooked_reads_of_placeholders_give_eager_values(held_runner, capsys):
    fresh_engine()
    model = mlp()
    data = batches(8)
    x = data[-1][0]
    with torch.no_grad():
        expected = _forward(model, x)
    region_id = _warm_region(model, data[:-1], "fetch")
    fetches_before = region_stats("fetch")["fetches"]

    reads = {}
    for name, read in [
        ("numpy", lambda t: torch.from_numpy(t.numpy().copy())),
        ("tolist", lambda t: torch.tensor(t.tolist())),
        ("array", lambda t: torch.from_numpy(np.asarray(t).copy())),
        ("repr", lambda t: print(t)),
    ]:
        fresh_x = x.clone()
        with terra.iteration("fetch"):
            held_runner()
            out = _forward(model, fresh_x)
        # Read after the iteration (as `print(loss)` after a loop would): the read's own ops
        # are not part of the region's iterations.
        assert engine.pending()  # the value is not there yet
        reads[name] = read(out)
        assert not engine.pending()
    reads.pop("repr")
    assert engine.phase(region_id) == "coexecuting"
    for name, value in reads.items():
        assert torch.equal(value, expected), name
    printed = capsys.readouterr().out
    assert str(expected) in printed
    assert region_stats("fetch")["fetches"] >= fetches_before + 4
    assert region_stats("fetch")["fallbacks"] == 0, terra.explain()


@pytest.mark.timeout(60)
def test_poisoned_placeholder_shows_a_missed_fetch(held_runner):
    fresh_engine()
    engine.configure(poison=True)
    try:
        model = mlp()
        data = batches(8)
        x = data[-1][0]
        with torch.no_grad():
            expected = _forward(model, x)
        _warm_region(model, data[:-1], "poison")
        x = x.clone()
        with terra.iteration("poison"):
            held_runner()
            out = _forward(model, x)
            # An unhooked raw read (the original TensorBase.data_ptr, then the memory itself).
            address = torch._C.TensorBase.data_ptr(out)
            raw = (ctypes.c_float * out.numel()).from_address(address)
            assert all(v != v for v in raw), "placeholder memory was not poisoned"  # NaN
            # The hooked path fetches first and sees the real values.
            hooked = torch.tensor(out.tolist())
        assert torch.equal(hooked, expected)
        assert not torch.isnan(out).any()
    finally:
        engine.configure(poison=False)


@pytest.mark.timeout(60)
def test_item_and_bool_fetch_inside_the_engine():
    fresh_engine()
    model = mlp()
    data = batches(10)
    values, expected = [], []
    for x, _ in data:
        with torch.no_grad():
            expected.append(float(_forward(model, x).sum()))
        with terra.iteration("item"):
            out = _forward(model, x).sum()
            values.append(out.item())
            assert bool(out > -1e9)
    assert values == expected
    stats = region_stats("item")
    assert stats["iterations_coexecuted"] >= 6
    assert stats["fetches"] >= 12  # item() and bool() per co-executed iteration


def _partial_fetch_step(iteration, x, w):
    """`a.item()` needs only `a` (and an in-place write to it); a slow chain of matmuls
    queued before it does not feed it."""
    with iteration("partial-fetch"):
        a = x.sum()
        a.mul_(0.5)  # queued in-place write: the fetch must wait for it too
        h = x
        for _ in range(12):
            h = torch.tanh(h @ w)
        value = a.item()
        still_queued = engine.queued()
        total = h.sum().item()
    return value, total, still_queued


@pytest.mark.timeout(120)
def test_item_waits_only_for_the_queued_ops_that_write_what_it_reads():
    x, w = torch.randn(384, 384), torch.randn(384, 384) / 20
    eager = [_partial_fetch_step(lambda _name: contextlib.nullcontext(), x, w)[:2]
             for _ in range(6)]
    fresh_engine()
    results = [_partial_fetch_step(terra.iteration, x, w) for _ in range(6)]
    terra.sync()
    assert [r[:2] for r in results] == eager
    stats = region_stats("partial-fetch")
    assert stats["iterations_coexecuted"] >= 3, stats
    assert stats["fallbacks"] == 0, terra.explain()
    # In co-executed iterations the matmul chain (tens of ms) was still queued when
    # `a.item()` returned: the fetch did not drain the queue.
    assert any(r[2] > 0 for r in results[3:]), results


@pytest.mark.timeout(60)
def test_default_generator_reads_see_the_queued_random_ops(held_runner):
    """`torch.default_generator.get_state()` right after a queued dropout: the generator is a
    C object whose methods cannot be hooked, so reading `torch.default_generator` fetches."""
    fresh_engine()
    x = torch.randn(64)

    def states(iteration, hold_last):
        torch.manual_seed(0)
        seen = []
        for step in range(6):
            with iteration("default-generator"):
                if hold_last and step == 5:
                    held_runner()
                torch.nn.functional.dropout(x * 2.0, 0.5)
                seen.append(torch.default_generator.get_state())
        return seen

    expected = states(lambda name: contextlib.nullcontext(), hold_last=False)
    got = states(terra.iteration, hold_last=True)
    assert all(torch.equal(a, b) for a, b in zip(got, expected))
    stats = region_stats("default-generator")
    assert stats["iterations_coexecuted"] >= 2, terra.explain()
    assert stats["fallbacks"] == 0, terra.explain()
