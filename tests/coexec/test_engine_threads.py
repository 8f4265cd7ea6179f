"""The program's other threads read what the loop's thread hands them, as in eager.

The loop's thread co-executes: its outputs are placeholders the GraphRunner fills later, and
its optimizer step is queued. Another threading.Thread that gets those tensors (through a
queue, a list, a closure) must see the values eager would have computed before the handing
over. The GraphRunner is held (a test hook; a wait releases it) and placeholders are poisoned,
so a read that did not wait sees NaN, not a lucky finished value.
"""

import contextlib
import queue
import threading

import pytest
import torch

import terra
from terra.engine import engine
from engine_programs import batches, fresh_engine, mlp, region_stats


def _step(model, optimizer, x, y):
    optimizer.zero_grad()
    out = model(x)
    loss = (out - y).pow(2).mean()
    loss.backward()
    optimizer.step()
    return out.detach()


def _read_on_another_thread(read):
    """`read()` on a new threading.Thread; returns its result or raises its exception."""
    result = {}

    def run():
        try:
            result["value"] = read()
        except Exception as error:  # noqa: BLE001 (handed back to the test's thread)
            result["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive(), "the other thread's read never returned"
    if "error" in result:
        raise result["error"]
    return result["value"]


def _reads(out, weight):
    """What a logger thread computes from the tensors it was handed: ops, and reads past
    the dispatcher (numpy, tolist)."""
    return {
        "ops": (out * 2.0).sum(dim=0),
        "clone of the stepped weight": weight.clone(),
        "numpy": torch.from_numpy(out.numpy().copy()),
        "tolist": torch.tensor(weight.tolist()),
    }


@pytest.mark.timeout(120)
def test_another_thread_reads_outputs_and_stepped_parameters_as_eager():
    fresh_engine()
    data = batches(8)
    eager_model, terra_model = mlp(), mlp()
    eager_opt = torch.optim.SGD(eager_model.parameters(), lr=0.1, momentum=0.9)
    terra_opt = torch.optim.SGD(terra_model.parameters(), lr=0.1, momentum=0.9)
    for x, y in data[:-1]:
        _step(eager_model, eager_opt, x, y)
        with terra.iteration("threads"):
            _step(terra_model, terra_opt, x, y)
    assert region_stats("threads")["phase"] == "coexecuting", terra.explain()
    coexecuted = region_stats("threads")["iterations_coexecuted"]

    x, y = data[-1]
    expected = _reads(_step(eager_model, eager_opt, x, y), eager_model[0].weight.detach())
    engine.configure(poison=True)
    try:
        with terra.iteration("threads"):
            engine._core._hold_runner(True)
            out = _step(terra_model, terra_opt, x, y)
        assert engine.pending()  # nothing ran: the other thread's reads must wait
        got = _read_on_another_thread(lambda: _reads(out, terra_model[0].weight.detach()))
    finally:
        engine._core._hold_runner(False)
        engine.configure(poison=False)
        terra.sync()

    for name, value in expected.items():
        assert torch.equal(got[name], value), name
    stats = region_stats("threads")
    assert stats["iterations_coexecuted"] == coexecuted + 1
    assert stats["fallbacks"] == 0, terra.explain()


@pytest.mark.timeout(120)
def test_a_logger_thread_fed_through_a_queue_logs_eager_values():
    """The pattern users write: the loop puts each step's output on a queue.Queue, a
    long-lived thread (started before the loop) reduces it."""
    fresh_engine()
    data = batches(12)

    def train(iteration):
        model = mlp()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        handed, logged = queue.Queue(), []

        def logger():
            while (out := handed.get()) is not None:
                logged.append((out * out).sum().item())

        thread = threading.Thread(target=logger)
        thread.start()
        for x, y in data:
            with iteration("logger"):
                handed.put(_step(model, optimizer, x, y))
        handed.put(None)
        thread.join(timeout=30)
        return logged, [p.detach().clone() for p in model.parameters()]

    expected_logged, expected_params = train(lambda name: contextlib.nullcontext())
    logged, params = train(terra.iteration)
    assert logged == expected_logged
    assert all(torch.equal(a, b) for a, b in zip(params, expected_params))
    stats = region_stats("logger")
    assert stats["iterations_coexecuted"] >= 6, terra.explain()
    assert stats["fallbacks"] == 0, terra.explain()


@pytest.mark.timeout(120)
def test_a_read_on_another_thread_of_a_failed_ops_output_raises_a_clear_error():
    """A queued op fails on the GraphRunner (segment_reduce has no value check, so a
    negative length fails there): another thread reading its output gets a RuntimeError,
    not a read of memory that was never written; the loop's thread gets the kernel's
    error."""
    fresh_engine()
    values = torch.randn(4, 5)
    good = torch.tensor([1, 3])
    bad = torch.tensor([5, -1])

    def step(lengths):
        return torch.segment_reduce(values * 2, "sum", lengths=lengths)

    for _ in range(4):
        with terra.iteration("failing"):
            step(good)
    assert region_stats("failing")["phase"] == "coexecuting", terra.explain()
    with pytest.raises(RuntimeError) as loop_error:
        with terra.iteration("failing"):
            engine._core._hold_runner(True)
            out = step(bad)
            with pytest.raises(RuntimeError, match="terra: .* on another thread"):
                _read_on_another_thread(lambda: out + 1)
            terra.sync()
    assert "terra" not in str(loop_error.value)  # the kernel's own error, as in eager
    engine._core._hold_runner(False)
    terra.sync()
