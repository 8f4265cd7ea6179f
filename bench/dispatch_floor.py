"""The per-op cost of co-execution beside the floor of any interception at the dispatcher.

Issue 3 asks that a co-executed op cost the Python thread at most half of the eager op.
For the micro-benchmark's op (`torch.add` of two 64-float tensors) that is mostly not
the kernel: Python's binding, autograd, the dispatcher and the wrapping of the result cost
the same whether the op then computes or not. This benchmark measures that floor with
`bench._dispatch_floor`, a boxed kernel on PrivateUse1 reached the way Terra's engine is
reached but doing none of the engine's work:

- *existing*: it answers with the op's first argument (no tensor is made);
- *placeholder*: it answers with a fresh tensor of that layout over a storage without memory,
  the least co-execution must hand back to Python.

Each round runs two processes (the floor's kernel and Terra's would collide in one), each
timing eager `add` too: one for the floor, one for Terra's co-executed `add`
(`engine_microbench.per_op_costs`, same method: median over iterations of 200 ops). The
figures are µs per op and ratios to the eager op of the same process; *engine's own work*
is Terra's figure minus the placeholder floor.

    .venv/bin/python bench/dispatch_floor.py [--rounds 5] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

OPS_PER_ITERATION = 200
SIZE = 64


def _us_per_op(body, iterations: int) -> float:
    """Median over `iterations` runs of `body()` (200 ops), in µs per op."""
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        body()
        times.append(time.perf_counter() - start)
    return statistics.median(times) / OPS_PER_ITERATION * 1e6


def _floor_child(iterations: int) -> dict:
    import torch

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import _dispatch_floor

    torch.set_num_threads(1)
    a, b = torch.randn(SIZE), torch.randn(SIZE)

    def ops():
        for _ in range(OPS_PER_ITERATION):
            torch.add(a, b)

    result = {"eager_us_per_op": _us_per_op(ops, iterations)}
    for mode in ("existing", "placeholder"):
        _dispatch_floor.install(mode)
        with torch._C._IncludeDispatchKeyGuard(torch._C.DispatchKey.PrivateUse1):
            out = torch.add(a, b)
            reached = out.data_ptr() == (a.data_ptr() if mode == "existing" else 0)
            result[f"{mode}_us_per_op"] = _us_per_op(ops, iterations)
        if not reached:
            raise SystemExit(f"the floor kernel was not reached ({mode})")
    return result


def _terra_child(iterations: int) -> dict:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import torch
    import engine_microbench

    torch.set_num_threads(1)
    costs = engine_microbench.per_op_costs(SIZE, iterations)
    return {"eager_us_per_op": costs["eager_us_per_op"],
            "coexec_us_per_op": costs["coexec_python_us_per_op"],
            "coexecuted_ops": costs["coexecuted_ops"]}


def _run_child(kind: str, iterations: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", kind,
                           "--iterations", str(iterations)],
                          env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{kind} run failed ({done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _summary(rounds: list) -> dict:
    rows = {
        "eager (floor process)": [r["floor"]["eager_us_per_op"] for r in rounds],
        "floor: existing tensor": [r["floor"]["existing_us_per_op"] for r in rounds],
        "floor: fresh placeholder": [r["floor"]["placeholder_us_per_op"] for r in rounds],
        "eager (Terra process)": [r["terra"]["eager_us_per_op"] for r in rounds],
        "Terra co-executed": [r["terra"]["coexec_us_per_op"] for r in rounds],
        "engine's own work": [r["terra"]["coexec_us_per_op"] - r["floor"]["placeholder_us_per_op"]
                              for r in rounds],
    }
    ratio_rows = {
        "floor: existing tensor": [r["floor"]["existing_us_per_op"] / r["floor"]["eager_us_per_op"]
                                   for r in rounds],
        "floor: fresh placeholder": [r["floor"]["placeholder_us_per_op"]
                                     / r["floor"]["eager_us_per_op"] for r in rounds],
        "Terra co-executed": [r["terra"]["coexec_us_per_op"] / r["terra"]["eager_us_per_op"]
                              for r in rounds],
    }
    return {"us_per_op": rows, "ratio_to_eager": ratio_rows}


def _print(summary: dict) -> None:
    def span(values):
        return f"{statistics.median(values):.3f} [{min(values):.3f}–{max(values):.3f}]"

    print(f"{'µs per op (median [min–max] over rounds)':44s}")
    for label, values in summary["us_per_op"].items():
        print(f"  {label:42s}{span(values):>24s}")
    print("ratio to the eager op of the same process")
    for label, values in summary["ratio_to_eager"].items():
        print(f"  {label:42s}{span(values):>24s}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--json", metavar="PATH")
    parser.add_argument("--child", choices=("floor", "terra"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child = _floor_child if args.child == "floor" else _terra_child
        print(json.dumps(child(args.iterations)))
        return 0
    rounds = []
    for index in range(args.rounds):
        order = ("floor", "terra") if index % 2 == 0 else ("terra", "floor")
        rounds.append({kind: _run_child(kind, args.iterations) for kind in order})
    summary = _summary(rounds)
    _print(summary)
    if args.json:
        import torch

        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({"machine": {"processor": platform.processor() or platform.machine(),
                                   "cores": os.cpu_count(), "torch": torch.__version__,
                                   "python": platform.python_version()},
                       "rounds": rounds, "summary": summary}, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
