"""Where the Python thread spends an MLP training step, phase by phase (docs/performance.md).

Runs the micro-benchmark's MLP (64-64-64-1, ReLU, batch 32, MSE, SGD with momentum) for
`--steps` steps with one intra-op thread, eagerly or inside `terra.iteration`, and prints
the median time of each phase of a step over the second two thirds of the steps:
`zero_grad()`, forward and loss, `loss.backward()`, `optimizer.step()`, and the end of the
iteration (Terra's `end_iteration`). One mode per process:

    .venv/bin/python bench/mlp_phases.py --mode eager
    TERRA_REPLAY_BACKWARD=0 .venv/bin/python bench/mlp_phases.py --mode terra
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch
import torch.nn.functional as F

import terra

PHASES = ("zero_grad", "forward", "backward", "step", "end", "total")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("eager", "terra"), required=True)
    parser.add_argument("--steps", type=int, default=3000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    width, batch = 64, 32
    data = [(torch.randn(batch, width), torch.randn(batch, 1)) for _ in range(8)]
    model = torch.nn.Sequential(torch.nn.Linear(width, width), torch.nn.ReLU(),
                                torch.nn.Linear(width, width), torch.nn.ReLU(),
                                torch.nn.Linear(width, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    times = {phase: [] for phase in PHASES}
    clock = time.perf_counter
    for i in range(args.steps):
        x, y = data[i % len(data)]
        context = terra.iteration("mlp") if args.mode == "terra" else contextlib.nullcontext()
        start = clock()
        context.__enter__()
        a = clock()
        optimizer.zero_grad()
        b = clock()
        loss = F.mse_loss(model(x), y)
        c = clock()
        loss.backward()
        d = clock()
        optimizer.step()
        e = clock()
        context.__exit__(None, None, None)
        f = clock()
        if i >= args.steps // 3:
            for phase, seconds in zip(PHASES, (b - a, c - b, d - c, e - d, f - e, f - start)):
                times[phase].append(seconds)
    terra.sync()
    print(args.mode, " ".join(f"{phase}={statistics.median(values) * 1e6:.1f}us"
                              for phase, values in times.items()))
    if args.mode == "terra":
        stats = next(r for r in terra.stats()["regions"] if r["name"] == "mlp")
        print({key: stats[key] for key in ("iterations_coexecuted", "backwards_replayed",
                                           "ops_coexecuted", "fallbacks")})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
