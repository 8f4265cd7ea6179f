"""Training loops under Terra are bitwise equal to eager and really co-execute."""

import pytest
import torch

import terra
from engine_programs import (adam_scheduler_loop, assert_coexecution_equals_eager, bitwise_equal,
                             eager_iteration, fresh_engine, mlp, region_stats, sgd_momentum_loop,
                             terra_iteration, batches, parameters_of)


@pytest.mark.timeout(120)
def test_sgd_momentum_mlp_is_bitwise_equal_and_coexecuted():
    stats = assert_coexecution_equals_eager(sgd_momentum_loop, "sgd")
    assert stats["iterations_coexecuted"] >= 15, stats
    assert stats["fallbacks"] == 0, terra.explain()
    assert stats["iterations_traced"] + stats["iterations_coexecuted"] == 20


@pytest.mark.timeout(120)
def test_adam_with_lr_scheduler_does_not_branch_every_iteration():
    stats = assert_coexecution_equals_eager(adam_scheduler_loop, "adam")
    assert stats["iterations_coexecuted"] >= 20, stats
    assert stats["graph_branches"] <= 3, stats
    assert stats["fallbacks"] <= 2, terra.explain()


OUTLIERS = (12, 20)  # batches whose loss is far above the threshold


def _diverging_loop(iteration, threshold=50.0):
    """`if loss.item() > threshold` takes another path on the outlier batches only."""
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    data = batches(30)
    for index in OUTLIERS:
        data[index] = (data[index][0], data[index][1] * 100.0)
    losses, taken = [], []
    for x, y in data:
        with iteration("diverge"):
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            if loss.item() > threshold:
                (loss * 0.001).backward()  # a path the graph has not seen before step 12
                taken.append(True)
            else:
                loss.backward()
                taken.append(False)
            optimizer.step()
            losses.append(loss.detach())
    return [loss.item() for loss in losses], parameters_of(model), taken


@pytest.mark.timeout(120)
def test_divergence_mid_iteration_falls_back_then_coexecutes_again():
    eager_losses, eager_params, taken = _diverging_loop(eager_iteration)
    assert [i for i, t in enumerate(taken) if t] == list(OUTLIERS)
    fresh_engine()
    terra_losses, terra_params, terra_taken = _diverging_loop(terra_iteration)

    assert terra_taken == taken
    assert terra_losses == eager_losses
    assert bitwise_equal(terra_params, eager_params)
    stats = region_stats("diverge")
    # Step 12 diverges (fallback, new branch); step 20 takes the known branch.
    assert stats["fallbacks"] == 1, terra.explain()
    assert stats["fetches"] >= 20, stats  # loss.item() in every co-executed iteration
    assert stats["graph_branches"] >= 1, stats
    assert stats["iterations_coexecuted"] >= 24, stats
    assert "fallback" in terra.explain() and "aten::" in terra.explain()


class _Boom(Exception):
    pass


def _loop_with_exception(iteration, fail_at):
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    caught = 0
    for step, (x, y) in enumerate(batches(15)):
        try:
            with iteration("exception"):
                optimizer.zero_grad()
                loss = torch.nn.functional.mse_loss(model(x), y)
                loss.backward()
                if step == fail_at:
                    raise _Boom()  # after backward, before the update
                optimizer.step()
        except _Boom:
            caught += 1
    return parameters_of(model), caught


@pytest.mark.timeout(120)
def test_exception_mid_iteration_leaves_parameters_as_eager():
    eager_params, _ = _loop_with_exception(eager_iteration, fail_at=9)
    fresh_engine()
    terra_params, caught = _loop_with_exception(terra_iteration, fail_at=9)

    assert caught == 1
    assert bitwise_equal(terra_params, eager_params)
    stats = region_stats("exception")
    assert stats["iterations_aborted"] == 1
    assert stats["iterations_coexecuted"] >= 8, stats
    # Gradients left by the aborted iteration are there, as in eager.


def test_disable_runs_eagerly():
    fresh_engine()
    terra.disable()
    try:
        losses, _ = sgd_momentum_loop(terra_iteration, steps=5)
        assert region_stats("sgd")["iterations_coexecuted"] == 0
    finally:
        terra.enable()
    eager_losses, _ = sgd_momentum_loop(eager_iteration, steps=5)
    assert losses == eager_losses


def _silu_adam_loop(iteration, steps=12):
    """SiLU's backward has a composite kernel next to its CPU kernel: it must not decompose."""
    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.SiLU(), torch.nn.Linear(32, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3, betas=(0.8, 0.99))
    x = torch.linspace(-2, 2, 40).unsqueeze(1).repeat(1, 4)
    y = torch.sin(x.sum(1, keepdim=True))
    losses = []
    for _ in range(steps):
        with iteration("silu"):
            optimizer.zero_grad()
            loss = torch.nn.functional.smooth_l1_loss(model(x), y)
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
    return [loss.item() for loss in losses], parameters_of(model)


@pytest.mark.timeout(120)
def test_ops_with_composite_and_cpu_kernels_run_the_cpu_kernel():
    stats = assert_coexecution_equals_eager(_silu_adam_loop, "silu")
    ops = {node["op"] for node in terra.graph("silu")["nodes"]}
    assert "aten::silu_backward" in ops and "aten::sigmoid" not in ops
    assert stats["iterations_coexecuted"] >= 8


def explicit_generator_loop(iteration, steps: int = 16):
    """Noise from an explicit torch.Generator whose state Python reads and reseeds mid-loop
    (Generator methods bypass the dispatcher, so its ops must not lag on the runner)."""
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    generator = torch.Generator().manual_seed(7)
    losses, states = [], []
    for step, (x, y) in enumerate(batches(steps)):
        with iteration("generator"):
            noisy = x + torch.randn(x.shape, generator=generator) * 0.1
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(noisy), y)
            loss.backward()
            optimizer.step()
            states.append(generator.get_state())  # read while the step's ops may be queued
            if step % 5 == 4:
                generator.manual_seed(step)
            losses.append(loss.detach())
    return [loss.item() for loss in losses] + [s.sum().item() for s in states], \
        parameters_of(model)


@pytest.mark.timeout(120)
def test_explicit_generator_state_is_current_when_python_reads_it():
    stats = assert_coexecution_equals_eager(explicit_generator_loop, "generator")
    assert stats["iterations_coexecuted"] >= 8, stats
    assert stats["fallbacks"] == 0, terra.explain()


# Padded lengths of the batches, in order: the first visit of 8 also initialises AdamW's
# state (a path of its own), 16 and 24 are visited twice before the region co-executes, 32
# first comes once it does.
BUCKETS = (8, 16, 16, 8, 24, 24, 32, 32, 8, 16, 24, 32)


def bucketed_lengths_loop(iteration):
    """Token classifier on length-bucketed batches, AdamW with a warm-up schedule: the
    learning rate and Adam's bias correction vary every step on every length's path."""
    torch.manual_seed(3)
    model = torch.nn.ModuleDict({"tokens": torch.nn.Embedding(64, 16),
                                 "head": torch.nn.Linear(16, 4)})
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: (step + 1) / 20)
    generator = torch.Generator().manual_seed(5)
    batches_ = [(torch.randint(0, 64, (4, length), generator=generator),
                 torch.randint(0, 4, (4,), generator=generator)) for length in BUCKETS]
    losses = []
    for tokens, labels in batches_:
        with iteration("buckets"):
            hidden = model["tokens"](tokens).mean(1)
            loss = torch.nn.functional.cross_entropy(model["head"](hidden), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.detach())
    return [loss.item() for loss in losses], parameters_of(model)


@pytest.mark.timeout(120)
def test_a_new_length_coexecutes_from_its_second_visit():
    # Each length opens its own branch; the scalars that vary were learnt on another
    # length's branch, so the second visit of 32 (step 7) co-executes instead of falling
    # back on the optimizer's first fed scalar (graph/varying_scalars.h).
    stats = assert_coexecution_equals_eager(bucketed_lengths_loop, "buckets")
    assert stats["fallbacks"] == 1, terra.explain()  # the first visit of 32 (step 6)
    assert stats["iterations_coexecuted"] == 5, stats  # steps 7 to 11
    assert stats["graph_branches"] >= 2, stats
