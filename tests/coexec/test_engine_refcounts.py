"""Autograd's reference-count decisions stay as in eager while the GraphRunner lags.

InputBuffer accumulates a gradient in place only when nobody else holds it, and
AccumulateGrad steals (detaches) a gradient under the same condition, else clones it. Ops
queued on the runner must therefore not hold the program's tensors themselves (they hold
storage aliases): otherwise backward issues other ops than eager (add for add_, a clone
for a detach) and every co-executed iteration falls back.
"""

import contextlib

import pytest
import torch

import terra
from engine_programs import fresh_engine


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


# Known limit (docs/architecture.md): InputBuffer also requires `storage().use_count() == 1`.
# A queued op that still has to read a gradient keeps its storage alive (it must: the memory
# is its input), so where eager's consumer already ran, backward chooses add for add_.
_STORAGE_LIMIT = pytest.mark.xfail(
    reason="queued consumers hold the gradient's StorageImpl (InputBuffer storage check)",
    strict=False)


@pytest.mark.parametrize("program", [_shared_weight_run,
                                     pytest.param(_residual_run, marks=_STORAGE_LIMIT)])
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
