"""Kernels that raise on some values raise where eager raises (coexec/src/value_checks.h).

Each case runs an op on a placeholder (a value the GraphRunner computes) inside a region;
on two steps its values make the CPU kernel raise, and the program catches the error
around that op alone. Eager raises inside the `try`; a co-executed op whose kernel raised
later, on the runner, would surface at the next op, outside it, and fail the test. The
runs must also match eager's caught errors (type and message) and values, and must have
co-executed.
"""

from __future__ import annotations

import ctypes

import pytest
import torch
import torch.nn.functional as F

import terra
from terra.engine import engine
from engine_programs import eager_iteration, fresh_engine, region_stats, terra_iteration

STEPS = 12
BAD_STEPS = (6, 9)


def _divisor(bad):
    return torch.tensor([1, 2, 3, 4, 5, 6 - 6 * bad])


# name -> op(h, bad): h is a 6x6 float placeholder; `bad` (0 or 1) makes the kernel raise.
CASES = {
    "embedding": lambda h, bad: F.embedding(torch.tensor([1, 2, 5 + bad]), h),
    "index_select": lambda h, bad: h.index_select(0, torch.tensor([0, 5 + bad])),
    "gather": lambda h, bad: h.gather(1, torch.tensor([[0], [5 + bad]])),
    "scatter_add": lambda h, bad: torch.zeros(6, 6).scatter_add(
        0, torch.tensor([[0, 5 + bad]]), h[:1, :2]),
    "advanced_index": lambda h, bad: h[torch.tensor([0, -6 - bad])],
    "index_put_": lambda h, bad: h.clone().index_put_(
        (torch.tensor([5 + bad]),), torch.tensor(1.0)),
    "index_reduce": lambda h, bad: h.clone().index_reduce_(
        0, torch.tensor([0, 5 + bad]), h[:2], "amax"),
    "multi_margin_loss": lambda h, bad: F.multi_margin_loss(
        h, torch.tensor([0, 1, 2, 3, 4, 5 + bad])),
    "multilabel_margin_loss": lambda h, bad: F.multilabel_margin_loss(  # past a -1 too
        h, torch.tensor([[0, 1, -1, 3 + 3 * bad, 0, 0]] * 6)),
    "multilabel_margin_loss_grad": lambda h, bad: F.multilabel_margin_loss(  # and backward
        h.detach().requires_grad_(), torch.tensor([[0, 1, -1 - bad, 3, 0, 0]] * 6)),
    "embedding_max_norm": lambda h, bad: F.embedding(  # embedding_renorm_ raises first
        torch.tensor([1, 2, 5 + bad]), h.clone(), max_norm=1.0),
    "histc": lambda h, bad: torch.histc(h / (1 - bad), bins=4),
    "masked_scatter": lambda h, bad: h.masked_scatter(
        torch.arange(36).reshape(6, 6) % (2 - bad) == 0, torch.arange(20.0)),
    "searchsorted_sorter": lambda h, bad: torch.searchsorted(
        h[0], h[1], sorter=torch.argsort(h[0]) + bad * torch.tensor([0, 0, 0, 0, 0, 3])),
    "take": lambda h, bad: h.take(torch.tensor([35 + bad])),
    "embedding_bag": lambda h, bad: F.embedding_bag(
        torch.tensor([0, 2, 5 + bad, 1]), h, torch.tensor([0, 2])),
    "embedding_bag_grad": lambda h, bad: F.embedding_bag(  # _embedding_bag, not _forward_only
        torch.tensor([0, 2, 5 + bad, 1]), h.detach().requires_grad_(), torch.tensor([0, 2])),
    "embedding_bag_offsets": lambda h, bad: F.embedding_bag(
        torch.tensor([0, 2, 5, 1]), h, torch.tensor([0, 2 + 3 * bad])),
    "max_unpool2d": lambda h, bad: F.max_unpool2d(
        h[:2, :2].reshape(1, 1, 2, 2), torch.tensor([[[[0, 3], [8, 15 + bad]]]]), 2,
        output_size=(4, 4)),
    "max_unpool3d": lambda h, bad: F.max_unpool3d(
        h[:2, :2].reshape(1, 1, 1, 2, 2), torch.tensor([[[[[0, 3], [8, 15 + bad]]]]]), (1, 2, 2),
        output_size=(1, 4, 4)),
    "cross_entropy": lambda h, bad: F.cross_entropy(h, torch.tensor([0, 1, 2, 3, 4, 5 + bad])),
    "cross_entropy_ignore_index": lambda h, bad: F.cross_entropy(
        h, torch.tensor([-100, 1, 2, 3, 4, 5 + bad])),
    "nll_loss2d": lambda h, bad: F.nll_loss(
        h.reshape(1, 6, 3, 2), torch.tensor([[[0, 1], [2, 3], [4, 5 + bad]]])),
    "floor_divide": lambda h, bad: (h * 10).long() // _divisor(bad),
    "remainder": lambda h, bad: (h * 10).long() % _divisor(bad),
    "fmod": lambda h, bad: torch.fmod((h * 10).long(), _divisor(bad)),
    "div_floor": lambda h, bad: torch.div((h * 10).long(), _divisor(bad), rounding_mode="floor"),
    "bernoulli": lambda h, bad: torch.bernoulli(torch.sigmoid(h) * (1 + bad)),
    "binary_cross_entropy": lambda h, bad: F.binary_cross_entropy(
        torch.sigmoid(h) * (1 + bad), torch.full((6, 6), 0.5)),
    "multinomial": lambda h, bad: torch.multinomial(torch.softmax(h, 1) * (1 - bad), 2),
    "cholesky": lambda h, bad: torch.linalg.cholesky(
        h @ h.T + (6.0 - 40.0 * bad) * torch.eye(6)),
    "inv": lambda h, bad: torch.linalg.inv(torch.eye(6) * (1 - bad) + h * 0),
}


def _program(iteration, name):
    """Returns (caught errors, per-step sums); the op's error is caught around it alone."""
    op = CASES[name]
    torch.manual_seed(0)
    w = torch.randn(6, 6)
    caught, sums = [], []
    for step in range(STEPS):
        with iteration("value-" + name):
            h = torch.tanh(w * 1.5)
            try:
                out = op(h, int(step in BAD_STEPS))
            except (IndexError, RuntimeError) as error:
                caught.append((step, type(error).__name__, str(error).splitlines()[0]))
                out = None
            # A later op, outside the try: where a deferred kernel error would surface.
            sums.append(None if out is None else out.double().sum().item())
            w = w + 0.01
    terra.sync()
    return caught, sums


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", sorted(CASES))
def test_a_kernel_error_is_raised_at_its_op(name):
    eager = _program(eager_iteration, name)
    assert [step for step, *_ in eager[0]] == list(BAD_STEPS), "the case must raise"
    fresh_engine()
    coexecuted = _program(terra_iteration, name)
    assert coexecuted == eager
    stats = region_stats("value-" + name)
    assert stats["iterations_coexecuted"] >= STEPS // 2, terra.explain()


def _training(iteration, with_checks):
    """An embedding + cross-entropy step whose indices and labels are always in range."""
    torch.manual_seed(1)
    embed = torch.nn.Embedding(20, 8)
    head = torch.nn.Linear(8, 5)
    params = list(embed.parameters()) + list(head.parameters())
    opt = torch.optim.SGD(params, lr=0.1)
    generator = torch.Generator().manual_seed(2)
    data = [(torch.randint(0, 20, (4, 3), generator=generator),
             torch.randint(0, 5, (4,), generator=generator)) for _ in range(16)]
    for tokens, labels in data:
        with iteration("value-checked-training"):
            logits = head(embed(tokens).mean(1))
            loss = F.cross_entropy(logits, labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
    terra.sync()
    return [p.detach().clone() for p in params]


@pytest.mark.timeout(60)
def test_checked_ops_on_fine_values_stay_queued():
    """The checks read only indices and labels the program made: no fetch, no wait for
    the logits, the same parameters as eager."""
    eager = _training(eager_iteration, True)
    fresh_engine()
    coexecuted = _training(terra_iteration, True)
    assert all(torch.equal(a, b) for a, b in zip(coexecuted, eager))
    stats = region_stats("value-checked-training")
    assert stats["iterations_coexecuted"] >= 12, terra.explain()
    assert stats["fetches"] == 0
    assert stats["fallbacks"] == 0


def _run_with_runner_held(region, step, message):
    """One iteration of `step` with the GraphRunner held and placeholders poisoned: its first
    result, a float placeholder, must still be unwritten when `step` returns (any wait
    releases the hold). Returns `step`'s results once the runner ran."""
    engine.configure(poison=True)
    try:
        with terra.iteration(region):
            engine._core._hold_runner(True)
            results = step()
            first = results[0]
            raw = (ctypes.c_float * first.numel()).from_address(
                torch._C.TensorBase.data_ptr(first))
            assert all(v != v for v in raw), message
    finally:
        engine._core._hold_runner(False)
        engine.configure(poison=False)
        terra.sync()
    return results


@pytest.mark.timeout(60)
def test_checks_read_indices_without_waiting_for_what_they_index():
    """With the runner held and placeholders poisoned, checked ops whose indices and labels
    the program made, a boolean mask and float divisions (which raise on no value) leave
    the indexed tensor uncomputed: no check waited for it (a wait releases the hold)."""
    fresh_engine()
    w = torch.randn(6, 6)
    tokens, labels = torch.tensor([1, 2, 5]), torch.tensor([0, 1, 2, 3, 4, 5])

    def step():
        h = torch.tanh(w * 1.5)
        h[h > 0.9] = 0.0
        ratio = h / (h.sum() + 10.0) + h % 0.5  # float divisions: no value to check
        return h, F.embedding(tokens, ratio), F.cross_entropy(h, labels)

    for _ in range(4):
        with terra.iteration("no-wait"):
            step()
    assert engine.phase(region_stats("no-wait")["id"]) == "coexecuting"
    h, _, _ = _run_with_runner_held("no-wait", step, "a check waited for the indexed tensor")
    with torch.no_grad():
        expected = torch.tanh(w * 1.5)
        expected[expected > 0.9] = 0.0
    assert torch.equal(h, expected)


# How a step derives its labels from the label stream (a (3, 5) int tensor) right before the
# loss: ops that run on the GraphRunner, queued after the logits.
LABEL_DERIVATIONS = {
    # reshape of a non-contiguous view copies (one op).
    "copied": lambda stream: stream[:, 1:3].reshape(-1),
    # three ops deep: the copy, then two that read the one before.
    "derived": lambda stream: stream[:, 1:3].reshape(-1).add(2).sub(2),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("derivation", sorted(LABEL_DERIVATIONS))
def test_labels_derived_before_the_loss_are_computed_at_once(derivation):
    """A check waits for its labels, which here come from ops queued after the logits: the
    wait covered the logits too. The ops a check waited for are learned and run at once
    from then on, so the check reads the labels with the logits still uncomputed (runner
    held, placeholders poisoned; a wait releases the hold); the values stay eager's."""
    fresh_engine()
    derive = LABEL_DERIVATIONS[derivation]
    torch.manual_seed(3)
    w, stream = torch.randn(6, 6), torch.randint(0, 6, (3, 5))

    def step():
        h = torch.tanh(w * 1.5)
        labels = derive(stream)
        return h, labels, F.cross_entropy(h, labels)

    region = "labels-" + derivation
    for _ in range(8):
        with terra.iteration(region):
            step()
    assert region_stats(region)["iterations_coexecuted"] >= 4, terra.explain()
    h, labels, loss = _run_with_runner_held(region, step, "the check waited for the logits")
    eager_h, eager_labels, eager_loss = step()  # outside a region: eager
    assert torch.equal(h, eager_h) and torch.equal(labels, eager_labels)
    assert torch.equal(loss, eager_loss)
    assert region_stats(region)["fallbacks"] == 0
