"""Backward passes replayed from a recording (coexec/src/backward_replay.h).

In co-execution the first `loss.backward()` at a graph position runs autograd's engine and is
recorded; later ones on an autograd graph of the same shape are issued from the recording.
Every test compares against the same program run eagerly in this process, and asserts from
the stats whether backward passes were replayed: where Python must run inside backward
(hooks, Python-defined Functions, saved-tensor hooks) none may be, and where they may be,
results must still be bitwise equal.
"""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F

from engine_programs import (batches, bitwise_equal, eager_iteration, fresh_engine, mlp,
                             parameters_of, region_stats, terra_iteration)
from terra.engine import engine

STEPS = 16


def _run_both(loop, region: str) -> tuple[object, object, dict]:
    """loop(iteration) eagerly, then under Terra in a fresh engine; the results and stats."""
    eager = loop(eager_iteration)
    fresh_engine()
    coexecuted = loop(terra_iteration)
    return eager, coexecuted, region_stats(region)


def _grads_of(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.grad.detach().clone() for p in model.parameters()]


def _training(iteration, region: str, *, model=None, data=None, before_backward=None,
              around_forward=None, steps: int = STEPS):
    """SGD steps of `model` (an MLP by default); per step its loss and gradients, and at the
    end its parameters. `before_backward(step, loss)` and `around_forward()` vary the step."""
    model = model if model is not None else mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    data = data if data is not None else batches(steps)
    losses, grads = [], []
    for step, (x, y) in enumerate(data):
        with iteration(region):
            optimizer.zero_grad()
            with (around_forward() if around_forward else contextlib.nullcontext()):
                loss = F.mse_loss(model(x), y)
            if before_backward:
                before_backward(step, loss)
            loss.backward()
            grads.append(_grads_of(model))
            optimizer.step()
            losses.append(loss.detach())
    return [loss.item() for loss in losses], [g for step in grads for g in step], \
        parameters_of(model)


def _assert_equal(eager, coexecuted) -> None:
    (eager_losses, eager_grads, eager_params) = eager
    (terra_losses, terra_grads, terra_params) = coexecuted
    assert terra_losses == eager_losses
    assert bitwise_equal(terra_grads, eager_grads)
    assert bitwise_equal(terra_params, eager_params)


@pytest.mark.timeout(120)
def test_a_plain_training_step_replays_its_backward_pass_bitwise_equal():
    eager, coexecuted, stats = _run_both(lambda it: _training(it, "plain"), "plain")
    _assert_equal(eager, coexecuted)
    # The first co-executed iteration records; every later one replays.
    assert stats["iterations_coexecuted"] >= STEPS - 4, stats
    assert stats["backwards_replayed"] == stats["iterations_coexecuted"] - 1, stats
    assert stats["fallbacks"] == 0


@pytest.mark.timeout(120)
@pytest.mark.parametrize("where", ["before", "inside"])
def test_a_batch_sliced_from_a_larger_tensor_is_read_where_it_is_now(where):
    """Token batches sliced from one stream, before the loop (feeds) or inside the step (a
    slice with a varying start): the batch's storage offset moves every step, and the
    embedding's backward must read this step's indices, not the recorded step's."""
    torch.manual_seed(0)
    stream = torch.randint(0, 32, (8, 16 * 8 + 1))

    def batch(c):
        return stream[:, c * 16:(c + 1) * 16], stream[:, c * 16 + 1:(c + 1) * 16 + 1]

    data = [batch(c) if where == "before" else c for c in range(8)] * 2

    def loop(iteration):
        torch.manual_seed(1)
        embed, head = torch.nn.Embedding(32, 16), torch.nn.Linear(16, 32)
        model = torch.nn.ModuleList([embed, head])
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        losses, grads = [], []
        for item in data:
            with iteration("tokens"):
                inputs, targets = batch(item) if where == "inside" else item
                optimizer.zero_grad()
                loss = F.cross_entropy(head(embed(inputs)).reshape(-1, 32), targets.reshape(-1))
                loss.backward()
                grads.extend(_grads_of(model))
                optimizer.step()
                losses.append(loss.item())
        return losses, grads, parameters_of(model)

    eager, coexecuted, stats = _run_both(loop, "tokens")
    _assert_equal(eager, coexecuted)
    assert stats["backwards_replayed"] >= len(data) - 5, stats


@pytest.mark.timeout(120)
def test_an_attention_step_replays_with_saved_outputs_in_their_own_layout():
    """softmax saves its output; autograd hands it back as a shallow copy found by its
    storage, which a reshaped view (for the batched matmul) shares: the replayed
    softmax backward must get the [b, heads, n, n] layout, not the view's [b*heads, n, n]."""
    class Attention(torch.nn.Module):
        def __init__(self, d=16, heads=4):
            super().__init__()
            self.heads, self.qkv, self.out = heads, torch.nn.Linear(d, 3 * d), torch.nn.Linear(d, d)

        def forward(self, x):
            b, n, d = x.shape
            q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).unbind(2)
            q, k, v = (t.transpose(1, 2) for t in (q, k, v))
            scores = (q @ k.transpose(-1, -2)) / (d // self.heads) ** 0.5
            return self.out((scores.softmax(-1) @ v).transpose(1, 2).reshape(b, n, d))

    generator = torch.Generator().manual_seed(5)
    data = [(torch.randn(4, 8, 16, generator=generator), torch.randn(4, 8, 16, generator=generator))
            for _ in range(STEPS)]

    def loop(iteration):
        torch.manual_seed(0)
        return _training(iteration, "attention", model=Attention(), data=data)

    eager, coexecuted, stats = _run_both(loop, "attention")
    _assert_equal(eager, coexecuted)
    assert stats["backwards_replayed"] >= STEPS - 5, stats


class _Counter:
    def __init__(self):
        self.calls = 0


def _hooked_mlp(kind: str, counter: _Counter) -> torch.nn.Module:
    model = mlp()
    if kind == "tensor":
        def forward_with_hook(module, args, output):
            def hook(grad):
                counter.calls += 1
                return grad * 0.5
            output.register_hook(hook)
        model[0].register_forward_hook(forward_with_hook)
    elif kind == "module":
        def backward_hook(module, grad_input, grad_output):
            counter.calls += 1
        model[2].register_full_backward_hook(backward_hook)
    elif kind == "leaf":
        def leaf_hook(grad):
            counter.calls += 1
        model[0].weight.register_hook(leaf_hook)
    elif kind == "post_accumulate":
        def post_hook(param):
            counter.calls += 1
        model[2].bias.register_post_accumulate_grad_hook(post_hook)
    return model


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", ["tensor", "module", "leaf", "post_accumulate"])
def test_backward_passes_with_hooks_run_autograd_every_step(kind):
    """A hook is Python the backward pass must run: never replayed, called every step."""
    def loop(iteration):
        counter = _Counter()
        result = _training(iteration, f"hooks-{kind}", model=_hooked_mlp(kind, counter))
        return result, counter.calls

    (eager, eager_calls), (coexecuted, terra_calls), stats = _run_both(loop, f"hooks-{kind}")
    _assert_equal(eager, coexecuted)
    assert terra_calls == eager_calls == STEPS
    assert stats["iterations_coexecuted"] >= STEPS - 4, stats
    assert stats["backwards_replayed"] == 0, stats


class _ScaledRelu(torch.autograd.Function):
    calls = 0

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad):
        _ScaledRelu.calls += 1
        (x,) = ctx.saved_tensors
        return grad * (x > 0) * 0.5


@pytest.mark.timeout(120)
def test_a_python_autograd_function_is_never_replayed():
    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = mlp()

        def forward(self, x):
            return self.inner[2](_ScaledRelu.apply(self.inner[0](x)))

    def loop(iteration):
        _ScaledRelu.calls = 0
        torch.manual_seed(0)
        result = _training(iteration, "function", model=Model())
        return result, _ScaledRelu.calls

    (eager, eager_calls), (coexecuted, terra_calls), stats = _run_both(loop, "function")
    _assert_equal(eager, coexecuted)
    assert terra_calls == eager_calls == STEPS
    assert stats["iterations_coexecuted"] >= STEPS - 4, stats
    assert stats["backwards_replayed"] == 0, stats


@pytest.mark.timeout(120)
def test_saved_tensor_hooks_in_the_forward_are_unpacked_every_step():
    unpacked = _Counter()

    def unpack(tensor):
        unpacked.calls += 1
        return tensor

    def around_forward():
        return torch.autograd.graph.saved_tensors_hooks(lambda t: t, unpack)

    def loop(iteration):
        unpacked.calls = 0
        return _training(iteration, "saved-hooks", around_forward=around_forward), \
            unpacked.calls

    (eager, eager_calls), (coexecuted, terra_calls), stats = _run_both(loop, "saved-hooks")
    _assert_equal(eager, coexecuted)
    assert terra_calls == eager_calls > 0
    assert stats["iterations_coexecuted"] >= STEPS - 4, stats
    assert stats["backwards_replayed"] == 0, stats


@pytest.mark.timeout(120)
def test_a_second_backward_through_a_replayed_graph_raises_as_in_eager():
    def loop(iteration):
        model = mlp()
        errors = []
        for x, y in batches(STEPS):
            with iteration("twice"):
                model.zero_grad()
                loss = F.mse_loss(model(x), y)
                loss.backward()
                try:
                    loss.backward()
                except RuntimeError as error:
                    errors.append(str(error).splitlines()[0])
        return errors, _grads_of(model), parameters_of(model)

    (eager_errors, eager_grads, _), (terra_errors, terra_grads, _), stats = \
        _run_both(loop, "twice")
    assert terra_errors == eager_errors and len(eager_errors) == STEPS
    assert bitwise_equal(terra_grads, eager_grads)
    assert stats["backwards_replayed"] >= STEPS - 5, stats


@pytest.mark.timeout(120)
def test_retained_graphs_and_accumulated_gradients_match_eager():
    """retain_graph=True, then a second backward that accumulates into the gradients the
    first one set (autograd adds in place: the same .grad tensors), every step."""
    def loop(iteration):
        model = mlp()
        grads = []
        for x, y in batches(STEPS):
            with iteration("retain"):
                model.zero_grad()
                loss = F.mse_loss(model(x), y)
                loss.backward(retain_graph=True)
                (loss * 2).backward()
                grads.extend(_grads_of(model))
        return grads, parameters_of(model)

    (eager_grads, _), (terra_grads, _), stats = _run_both(loop, "retain")
    assert bitwise_equal(terra_grads, eager_grads)
    assert stats["iterations_coexecuted"] >= STEPS - 4, stats
    assert stats["backwards_replayed"] >= 2 * (STEPS - 5), stats  # both of each step


@pytest.mark.timeout(120)
@pytest.mark.parametrize("zeroing", ["in_place", "every_other_step"])
def test_gradients_accumulated_over_micro_batches_match_eager(zeroing):
    """Gradients zeroed in place (zero_grad(set_to_none=False)) and accumulated over two
    micro-batches per step: replayed, the .grad tensors written in place. Zeroed only every
    other step, the odd steps accumulate into gradients from the step before, which the
    iteration has not seen: those backward passes run autograd, with the same results."""
    data = batches(2 * STEPS)

    def loop(iteration):
        model = mlp()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        grads, identities = [], []
        for step in range(STEPS):
            with iteration("micro"):
                if zeroing == "in_place" or step % 2 == 0:
                    optimizer.zero_grad(set_to_none=False)
                for x, y in data[2 * step:2 * step + 2]:
                    (F.mse_loss(model(x), y) / 2).backward()
                grads.extend(_grads_of(model))
                identities.append([id(p.grad) for p in model.parameters()])
                optimizer.step()
        same_objects = all(ids == identities[0] for ids in identities)
        return grads, same_objects, parameters_of(model)

    (eager_grads, eager_same, eager_params), (terra_grads, terra_same, terra_params), stats = \
        _run_both(loop, "micro")
    assert bitwise_equal(terra_grads, eager_grads)
    assert bitwise_equal(terra_params, eager_params)
    assert terra_same == eager_same is True  # .grad stays the same tensor, as in eager
    assert stats["iterations_coexecuted"] >= STEPS - 4, stats
    replayable = 2 if zeroing == "in_place" else 1  # per step, on average
    assert stats["backwards_replayed"] >= replayable * (STEPS - 6), stats


@pytest.mark.timeout(120)
def test_freezing_a_layer_mid_run_changes_the_backward_pass_as_in_eager():
    """The same forward ops over a different autograd graph: the recording is not used."""
    def loop(iteration):
        model = mlp()

        def freeze(step, loss):
            if step == 9:
                model[0].weight.requires_grad_(False)

        def step_grads(x, y, optimizer):
            optimizer.zero_grad()
            loss = F.mse_loss(model(x), y)
            loss.backward()
            optimizer.step()
            return loss.item(), [p.grad is None for p in model.parameters()]

        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        seen = []
        for step, (x, y) in enumerate(batches(STEPS)):
            freeze(step, None)
            with iteration("freeze"):
                seen.append(step_grads(x, y, optimizer))
        return seen, parameters_of(model)

    (eager_seen, eager_params), (terra_seen, terra_params), stats = _run_both(loop, "freeze")
    assert terra_seen == eager_seen
    assert bitwise_equal(terra_params, eager_params)
    assert stats["backwards_replayed"] >= 4, stats


@pytest.mark.timeout(120)
def test_replay_can_be_turned_off():
    saved = engine.settings()["replay_backward"]
    engine.configure(replay_backward=False)
    try:
        eager, coexecuted, stats = _run_both(lambda it: _training(it, "off"), "off")
    finally:
        engine.configure(replay_backward=saved)
    _assert_equal(eager, coexecuted)
    assert stats["iterations_coexecuted"] >= STEPS - 4, stats
    assert stats["backwards_replayed"] == 0, stats
