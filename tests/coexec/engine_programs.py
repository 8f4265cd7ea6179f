"""Small training programs run eagerly and under Terra in the same process (engine tests).

Each program takes `iteration`, a factory of the context manager that marks one iteration
(terra.iteration for Terra, contextlib.nullcontext for eager), so both runs execute the
same code with the same seeds.
"""

from __future__ import annotations

import contextlib

import torch
import terra


def eager_iteration(_name):
    """The eager run's stand-in for terra.iteration."""
    return contextlib.nullcontext()


def terra_iteration(name):
    return terra.iteration(name)


def fresh_engine() -> None:
    """Forgets every region so that stats belong to one test."""
    terra.sync()
    terra.reset()


def mlp(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))


def batches(count: int, features: int = 32, outputs: int = 1, classes: int | None = None):
    """Deterministic batches made outside the loop (Python feeds them each iteration)."""
    generator = torch.Generator().manual_seed(1234)
    data = []
    for _ in range(count):
        x = torch.randn(16, features, generator=generator)
        if classes is None:
            y = torch.randn(16, outputs, generator=generator)
        else:
            y = torch.randint(0, classes, (16,), generator=generator)
        data.append((x, y))
    return data


def parameters_of(model: torch.nn.Module) -> list[torch.Tensor]:
    terra.sync()
    return [p.detach().clone() for p in model.parameters()]


def bitwise_equal(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    """Same dtypes, shapes and bytes (0.0 and -0.0 differ, as they would in a checksum)."""
    def raw(t):
        return t.detach().contiguous().reshape(-1).view(torch.uint8)

    return len(a) == len(b) and all(
        x.dtype == y.dtype and x.shape == y.shape and torch.equal(raw(x), raw(y))
        for x, y in zip(a, b))


def region_stats(name: str) -> dict:
    for entry in terra.stats()["regions"]:
        if entry["name"] == name:
            return entry
    raise KeyError(name)


def assert_coexecution_equals_eager(loop, region: str) -> dict:
    """Runs `loop(iteration)` eagerly, then under Terra in a fresh engine; asserts equal
    losses and bitwise-equal parameters; returns the Terra region's stats."""
    eager_losses, eager_params = loop(eager_iteration)
    fresh_engine()
    terra_losses, terra_params = loop(terra_iteration)
    assert terra_losses == eager_losses
    assert bitwise_equal(terra_params, eager_params)
    return region_stats(region)


def sgd_momentum_loop(iteration, steps: int = 20):
    """MLP regression, SGD with momentum: returns (losses, parameters)."""
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    losses = []
    for x, y in batches(steps):
        with iteration("sgd"):
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
    return [loss.item() for loss in losses], parameters_of(model)


def adam_scheduler_loop(iteration, steps: int = 30):
    """Classifier with dropout, Adam and a StepLR schedule (scalars that vary)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.Tanh(), torch.nn.Dropout(0.1),
                                torch.nn.Linear(64, 4))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=5, gamma=0.5)
    losses = []
    for x, y in batches(steps, classes=4):
        with iteration("adam"):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.detach())
    return [loss.item() for loss in losses], parameters_of(model)
