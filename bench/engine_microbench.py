"""Micro-benchmark of the co-execution engine (not a test): `python bench/engine_microbench.py`.

Prints, side by side in one run:
  - eager µs per op: torch.add on small tensors from Python, no Terra;
  - tracing µs per op: the same ops inside an iteration while its region is traced;
  - co-execution Python-side µs per op: the same ops once the region co-executes (the
    Python thread's cost only: placeholders, no kernel);
  - GraphRunner µs per replayed node (kernel included), from the engine's own timing;
  - an MLP training-loop iteration, eager vs Terra, at steady state.
Numbers go to docs/performance.md by hand, with the machine they came from.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import terra  # noqa: E402
from terra.engine import engine  # noqa: E402

OPS_PER_ITERATION = 200


def _ops(a, b):
    for _ in range(OPS_PER_ITERATION):
        torch.add(a, b)


def _time_iterations(body, iterations):
    """Median wall time of `body()` over `iterations` runs, in seconds."""
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        body()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def per_op_costs(size: int, iterations: int) -> dict:
    a, b = torch.randn(size), torch.randn(size)
    eager = _time_iterations(lambda: _ops(a, b), iterations) / OPS_PER_ITERATION

    terra.reset()
    engine.configure(warmup_iterations=10**9)  # stays in tracing

    def traced():
        with terra.iteration("bench-trace"):
            _ops(a, b)

    tracing = _time_iterations(traced, iterations) / OPS_PER_ITERATION

    terra.reset()
    engine.configure(warmup_iterations=2)
    python_side = []

    def coexecuted():
        with terra.iteration("bench-coexec"):
            start = time.perf_counter()
            _ops(a, b)
            python_side.append(time.perf_counter() - start)

    for _ in range(5):
        coexecuted()
        terra.sync()
    python_side.clear()
    stats_before = _region("bench-coexec")
    for _ in range(iterations):
        coexecuted()
        terra.sync()  # keep the queue short: Python-side cost only, not back-pressure
    stats_after = _region("bench-coexec")
    assert stats_after["phase"] == "coexecuting", stats_after
    nodes = (stats_after["ops_coexecuted"] - stats_before["ops_coexecuted"])
    runner = (stats_after["time_graph_s"] - stats_before["time_graph_s"]) / max(nodes, 1)
    return {
        "eager_us_per_op": eager * 1e6,
        "tracing_us_per_op": tracing * 1e6,
        "tracing_overhead_us_per_op": (tracing - eager) * 1e6,
        "coexec_python_us_per_op": statistics.median(python_side) / OPS_PER_ITERATION * 1e6,
        "runner_us_per_node": runner * 1e6,
    }


def _region(name: str) -> dict:
    for entry in terra.stats()["regions"]:
        if entry["name"] == name:
            return entry
    raise KeyError(name)


def mlp_loop(use_terra: bool, steps: int, width: int, batch: int) -> tuple[float, int]:
    """Median steady-state seconds per training iteration; iterations until co-execution."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(width, width), torch.nn.ReLU(),
                                torch.nn.Linear(width, width), torch.nn.ReLU(),
                                torch.nn.Linear(width, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    data = [(torch.randn(batch, width), torch.randn(batch, 1)) for _ in range(8)]
    terra.reset()
    times, started = [], -1
    for step in range(steps):
        x, y = data[step % len(data)]
        context = terra.iteration("bench-mlp") if use_terra else contextlib.nullcontext()
        start = time.perf_counter()
        with context:
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            optimizer.step()
        times.append(time.perf_counter() - start)
        if use_terra and started < 0 and _region("bench-mlp")["iterations_coexecuted"] > 0:
            started = step
    terra.sync()
    steady = times[steps // 2:]
    return statistics.median(steady), started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--size", type=int, default=64, help="elements per add operand")
    parser.add_argument("--mlp-steps", type=int, default=200)
    parser.add_argument("--mlp-width", type=int, default=64)
    parser.add_argument("--mlp-batch", type=int, default=32)
    args = parser.parse_args()

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"python {platform.python_version()}")
    costs = per_op_costs(args.size, args.iterations)
    for key, value in costs.items():
        print(f"{key:32s} {value:8.2f}")
    eager_s, _ = mlp_loop(False, args.mlp_steps, args.mlp_width, args.mlp_batch)
    terra_s, started = mlp_loop(True, args.mlp_steps, args.mlp_width, args.mlp_batch)
    stats = _region("bench-mlp")
    print(f"mlp iteration eager (ms)         {eager_s * 1e3:8.3f}")
    print(f"mlp iteration terra (ms)         {terra_s * 1e3:8.3f}")
    print(f"mlp speedup                      {eager_s / terra_s:8.2f}")
    print(f"mlp co-execution from iteration  {started:8d}")
    print(f"mlp stats: coexecuted {stats['iterations_coexecuted']}, traced "
          f"{stats['iterations_traced']}, fallbacks {stats['fallbacks']}, "
          f"fetches {stats['fetches']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
