"""Autograd's reference-count decisions stay as in eager while the GraphRunner lags.

InputBuffer accumulates a gradient in place only when nobody else holds it (its TensorImpl
and its StorageImpl: `use_count() == 1 && storage().use_count() == 1`), and AccumulateGrad
steals (detaches) a gradient under the same condition, else clones it. Ops queued on the
runner must therefore raise the use count of no TensorImpl or StorageImpl the program can
see (they hold the memory through StorageImpls of their own: GraphRunner::hold_arguments);
otherwise backward issues other ops than eager (add for add_, a clone for a detach) and the
iteration falls back, depending on how far the runner lags.
"""

import contextlib
import os

import pytest
import torch

import terra
from terra.engine import engine
from engine_programs import (batches, bitwise_equal, eager_iteration, fresh_engine,
                             region_stats, terra_iteration)


def _shared_weight_run(iteration, steps: int = 20):
    """A parameter used twice in forward (its gradient is accumulated) and plain SGD."""
    torch.manual_seed(0)
    w = torch.randn(64, 64, requires_grad=True)
    x, x2 = torch.randn(64, 64), torch.randn(64, 64)
    for _ in range(steps):
        with iteration("shared_weight"):
            y = (w * x + w * x2).tanh().sum()
            y.backward()
            with torch.no_grad():
                w.sub_(w.grad * 0.01)
                w.grad = None
    terra.sync()
    return w.detach().clone()


def _residual_run(iteration, steps: int = 20):
    """Residual connections `h + f(h)`: two gradient paths meet at every block input."""
    torch.manual_seed(1)
    blocks = torch.nn.ModuleList(torch.nn.Linear(48, 48) for _ in range(3))
    opt = torch.optim.SGD(blocks.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(16, 48)
    for _ in range(steps):
        with iteration("residual"):
            h = x
            for block in blocks:
                h = h + torch.relu(block(h))
            loss = h.square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    terra.sync()
    return [p.detach().clone() for p in blocks.parameters()]


@pytest.mark.parametrize("program", [_shared_weight_run, _residual_run])
def test_gradient_accumulation_coexecutes_without_fallback(program):
    eager = program(lambda _name: contextlib.nullcontext())
    fresh_engine()
    got = program(terra.iteration)
    stats = terra.stats()
    assert stats["fallbacks"] == 0, terra.explain()
    assert stats["iterations_coexecuted"] >= 16
    eager = eager if isinstance(eager, list) else [eager]
    got = got if isinstance(got, list) else [got]
    assert all(torch.equal(a, b) for a, b in zip(eager, got))


def _hold_runner():
    """Holds the GraphRunner: nothing queued from here on runs before the next sync (or
    backpressure). Everything the iteration queues is then still pending when Python issues
    its readers, autograd's accumulations included."""
    engine._core._hold_runner(True)


def _no_hold():
    pass


def _residual_mlp_loop(iteration, hold=_no_hold, steps: int = 16):
    """A residual MLP whose first block's weight is used twice, SGD with momentum.

    Residual connections `h + f(h)` make two gradients meet at every block input (InputBuffer
    adds the second in place only when nobody holds the first), the reused weight makes
    AccumulateGrad accumulate. The loss is fetched between forward and backward, so backward
    reads forward values whose memory exists (shared with the runner) and gradients that are
    still pending (the runner is held again)."""
    torch.manual_seed(2)
    stem = torch.nn.Linear(32, 48)
    blocks = torch.nn.ModuleList(torch.nn.Linear(48, 48) for _ in range(3))
    head = torch.nn.Linear(48, 1)
    params = [*stem.parameters(), *blocks.parameters(), *head.parameters()]
    optimizer = torch.optim.SGD(params, lr=0.01, momentum=0.9)
    losses = []
    for x, y in batches(steps, features=32):
        terra.sync()  # the runner starts each iteration idle (a no-op when eager)
        with iteration("residual_mlp"):
            hold()
            h = torch.tanh(stem(x))
            for block in blocks:
                h = h + torch.relu(block(h))
            reused = (h @ blocks[0].weight.t()).mean(dim=1, keepdim=True)
            loss = torch.nn.functional.mse_loss(head(h) + 0.1 * reused, y)
            losses.append(loss.item())  # a fetch: forward values exist from here on
            hold()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    terra.sync()
    return losses, [p.detach().clone() for p in params]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("lag", ["held", "free"])
def test_residual_mlp_with_lagging_runner_matches_eager_without_fallback(lag):
    eager_losses, eager_params = _residual_mlp_loop(eager_iteration)
    fresh_engine()
    hold = _hold_runner if lag == "held" else _no_hold
    losses, params = _residual_mlp_loop(terra_iteration, hold)
    stats = region_stats("residual_mlp")
    assert stats["fallbacks"] == 0, terra.explain()
    assert stats["iterations_coexecuted"] >= 13
    assert losses == eager_losses
    assert bitwise_equal(params, eager_params)


def _dropped_and_mutated_loop(iteration, hold=_no_hold, steps: int = 10):
    """Queued readers of a placeholder whose producer has not run, which Python then mutates
    in place and drops before the producer ran."""
    torch.manual_seed(3)
    w = torch.randn(32, 32)
    x = torch.randn(8, 32)
    outs = []
    with torch.no_grad():
        for _ in range(steps):
            terra.sync()
            with iteration("dropped"):
                hold()
                a = x @ w       # a placeholder; its producer is held
                b = a * 2.0     # readers queued before the producer ran
                c = a.sin()
                a.mul_(3.0)     # mutated in place after its readers (program order)
                d = a + b       # reads the mutated value
                del a           # dropped before its producer ran
                e = (b + c + d).sum(0)
                x = x + 0.01 * e.tanh()[None, :]
                outs.append(e)
    terra.sync()
    return [o.clone() for o in outs]


@pytest.mark.timeout(60)
def test_readers_of_dropped_and_mutated_pending_placeholders_see_eager_values():
    expected = _dropped_and_mutated_loop(eager_iteration)
    fresh_engine()
    got = _dropped_and_mutated_loop(terra_iteration, _hold_runner)
    assert region_stats("dropped")["fallbacks"] == 0, terra.explain()
    assert region_stats("dropped")["iterations_coexecuted"] >= 7
    assert bitwise_equal(got, expected)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.timeout(120)
@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc")
def test_memory_shared_with_queued_readers_is_freed_after_last_use():
    """64 MiB intermediates every iteration, read by queued ops while pending (runner held)
    and after they were filled: a share that outlived its last reader would keep them, and
    the resident set would grow by at least 64 MiB per iteration."""
    big = torch.randn(16 * 1024 * 1024)
    sums = []

    def iterate(hold):
        terra.sync()
        with terra.iteration("big"):
            hold()
            y = big * 2.0   # pending, then read by z's op
            z = y + 1.0
            del y
            sums.append(z.sum())
            sums.append(z.max())  # a fetch below reads it: z's memory exists then
            del z

    fresh_engine()
    for _ in range(4):
        iterate(_hold_runner)
    terra.sync()
    before = _rss_bytes()
    for step in range(12):
        iterate(_hold_runner if step % 2 else _no_hold)
        float(sums[-1])
    terra.sync()
    grown = _rss_bytes() - before
    assert region_stats("big")["iterations_coexecuted"] >= 10
    assert grown < 96 * 1024 * 1024, f"resident set grew by {grown / 2**20:.0f} MiB"
