"""Micro-benchmark of the co-execution engine (not a test): `python bench/engine_microbench.py`.

Prints, side by side in one run:
  - eager µs per op: torch.add on small tensors from Python, no Terra;
  - tracing µs per op: the same ops inside an iteration while its region is traced (its
    graph already holds them, as in every traced iteration after a region's first), and in
    the first iteration of a region (no graph yet: every op gets a full record);
  - co-execution Python-side µs per op: the same ops once the region co-executes (the
    Python thread's cost only: placeholders, no kernel);
  - GraphRunner µs per replayed node (kernel included), from the engine's own timing;
  - three training loops (an MLP, a small CNN, a small LSTM), eager and Terra side by side:
    they alternate in blocks of steps (which one goes first rotates every round), each
    reports its median steady-state iteration time, the speedup, the step at which
    co-execution started, the region's stats (a silent fallback shows) and whether the
    final parameters of the Terra loop equal eager's bit for bit.
`--json PATH` writes every figure. Numbers go to docs/performance.md by hand, with the
machine, the versions, the date and the load they came from.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import os
import platform
import statistics
import sys
import time
from typing import Callable

import torch
import torch.nn.functional as F

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

    fresh_regions = iter(range(10**9))

    def traced_first():
        with terra.iteration(f"bench-trace-first-{next(fresh_regions)}"):
            _ops(a, b)

    tracing_first = _time_iterations(traced_first, iterations) / OPS_PER_ITERATION

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
        "tracing_first_iteration_overhead_us_per_op": (tracing_first - eager) * 1e6,
        "coexec_python_us_per_op": statistics.median(python_side) / OPS_PER_ITERATION * 1e6,
        "runner_us_per_node": runner * 1e6,
        "coexecuted_ops": nodes,
    }


def _region(name: str) -> dict:
    for entry in terra.stats()["regions"]:
        if entry["name"] == name:
            return entry
    raise KeyError(name)


@dataclasses.dataclass
class Loop:
    """One training loop: `step(i)` is a plain training step on batch i (zero_grad,
    forward, loss, backward, optimizer.step); `modules` hold its parameters and buffers."""

    modules: list
    step: Callable[[int], None]


def _supervised(data: list, model: torch.nn.Module, optimizer, loss_fn) -> Loop:
    """The training step on (inputs, targets) batches, cycling through `data`."""

    def step(i: int) -> None:
        inputs, targets = data[i % len(data)]
        optimizer.zero_grad()
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        optimizer.step()

    return Loop([model], step)


def mlp(args, seed: int) -> Callable[[], Loop]:
    """MLP width-width-width-1, ReLU, MSE, SGD with momentum (as c01/c02 do)."""
    torch.manual_seed(seed)
    width, batch = args.mlp_width, args.mlp_batch
    data = [(torch.randn(batch, width), torch.randn(batch, 1)) for _ in range(8)]

    def make() -> Loop:
        torch.manual_seed(seed + 1)
        model = torch.nn.Sequential(torch.nn.Linear(width, width), torch.nn.ReLU(),
                                    torch.nn.Linear(width, width), torch.nn.ReLU(),
                                    torch.nn.Linear(width, 1))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        return _supervised(data, model, optimizer, F.mse_loss)

    return make


class SmallCNN(torch.nn.Module):
    """c29_small_cnn.py's network, on 28x28 images: 2 x (conv 3x3, ReLU, max-pool 2), linear."""

    def __init__(self, channels: int = 8, classes: int = 10):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, channels, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(channels, 2 * channels, 3, padding=1)
        self.fc = torch.nn.Linear(2 * channels * 7 * 7, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc(torch.flatten(x, 1))


def cnn(args, seed: int) -> Callable[[], Loop]:
    """SmallCNN on batches of 1x28x28 images, cross-entropy, SGD with momentum (as c29)."""
    torch.manual_seed(seed)
    data = [(torch.randn(args.cnn_batch, 1, 28, 28), torch.randint(0, 10, (args.cnn_batch,)))
            for _ in range(4)]

    def make() -> Loop:
        torch.manual_seed(seed + 1)
        net = SmallCNN()
        optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
        return _supervised(data, net, optimizer, F.cross_entropy)

    return make


def lstm(args, seed: int, vocab: int = 32) -> Callable[[], Loop]:
    """c30_small_lstm.py's language model: embedding, one-layer LSTM, linear head, Adam,
    truncated BPTT with the hidden state carried (detached) from step to step."""
    torch.manual_seed(seed)
    seq, batch, chunks = args.lstm_seq, args.lstm_batch, 8
    stream = torch.randint(0, vocab, (batch, seq * chunks + 1))
    data = [(stream[:, c * seq:(c + 1) * seq], stream[:, c * seq + 1:(c + 1) * seq + 1])
            for c in range(chunks)]

    def make() -> Loop:
        torch.manual_seed(seed + 1)
        embed = torch.nn.Embedding(vocab, 32)
        rnn = torch.nn.LSTM(32, args.lstm_hidden, batch_first=True)
        head = torch.nn.Linear(args.lstm_hidden, vocab)
        optimizer = torch.optim.Adam([*embed.parameters(), *rnn.parameters(),
                                      *head.parameters()], lr=5e-3)
        carried = [None]

        def step(i: int) -> None:
            inputs, targets = data[i % len(data)]
            optimizer.zero_grad()
            out, state = rnn(embed(inputs), carried[0])
            carried[0] = tuple(s.detach() for s in state)
            loss = F.cross_entropy(head(out).reshape(-1, vocab), targets.reshape(-1))
            loss.backward()
            optimizer.step()

        return Loop([embed, rnn, head], step)

    return make


LOOPS = {"mlp": mlp, "cnn": cnn, "lstm": lstm}


def _bitwise_equal(a: Loop, b: Loop) -> bool:
    """Whether every parameter and buffer of `a` has the same bytes as `b`'s."""
    for left, right in zip(a.modules, b.modules):
        ls, rs = left.state_dict(), right.state_dict()
        if ls.keys() != rs.keys():
            return False
        for key in ls:
            x, y = ls[key].detach().cpu(), rs[key].detach().cpu()
            if x.shape != y.shape or x.dtype != y.dtype or \
                    x.contiguous().numpy().tobytes() != y.contiguous().numpy().tobytes():
                return False
    return True


def side_by_side(name: str, make: Callable[[], Loop], rounds: int, block: int,
                 warmup_rounds: int) -> dict:
    """Runs the loop eagerly and under Terra in alternating blocks of `block` steps.

    Both see the same batches in the same order; round r runs eager first when r is
    even, Terra first when odd. Steady state: the rounds after the first
    `warmup_rounds`. Each Terra block ends with terra.sync(), so its block time holds
    all the work the GraphRunner did for it: the block figures (mean per iteration) are
    what a user waits for; the medians of single iterations hide the Terra side's tail
    (backpressure waits, the GraphRunner and OpenMP threads sharing the cores).
    """
    region = f"bench-{name}"
    terra.reset()
    loops = {"eager": make(), "terra": make()}
    times = {"eager": [], "terra": []}      # per iteration, steady rounds only
    blocks = {"eager": [], "terra": []}     # per block (sync included), steady rounds only
    done = {"eager": 0, "terra": 0}
    started = -1
    for r in range(rounds):
        for mode in (("eager", "terra") if r % 2 == 0 else ("terra", "eager")):
            loop, steady = loops[mode], r >= warmup_rounds
            block_start = time.perf_counter()
            for _ in range(block):
                i = done[mode]
                context = terra.iteration(region) if mode == "terra" else contextlib.nullcontext()
                start = time.perf_counter()
                with context:
                    loop.step(i)
                elapsed = time.perf_counter() - start
                if steady:
                    times[mode].append(elapsed)
                done[mode] += 1
                if mode == "terra" and started < 0 and \
                        _region(region)["iterations_coexecuted"] > 0:
                    started = i
            if mode == "terra":
                terra.sync()
            if steady:
                blocks[mode].append(time.perf_counter() - block_start)
    terra.sync()
    stats = _region(region)
    eager_s, terra_s = statistics.median(times["eager"]), statistics.median(times["terra"])
    eager_block, terra_block = (statistics.median(blocks["eager"]) / block,
                                statistics.median(blocks["terra"]) / block)
    nodes = max(stats["ops_coexecuted"], 1)
    coexecuted = max(stats["iterations_coexecuted"], 1)
    return {
        "steps": rounds * block,
        "steady_iterations": len(times["terra"]),
        "eager_ms": eager_s * 1e3,
        "terra_ms": terra_s * 1e3,
        "speedup": eager_s / terra_s,
        "eager_block_ms_per_iteration": eager_block * 1e3,
        "terra_block_ms_per_iteration": terra_block * 1e3,
        "speedup_blocks": eager_block / terra_block,
        "coexec_from_step": started,
        "ops_per_coexecuted_iteration": stats["ops_coexecuted"] / coexecuted,
        "runner_us_per_node": stats["time_graph_s"] / nodes * 1e6,
        "runner_ms_per_coexecuted_iteration": stats["time_graph_s"] / coexecuted * 1e3,
        "equal": _bitwise_equal(loops["eager"], loops["terra"]),
        "stats": {key: stats[key] for key in (
            "iterations_coexecuted", "iterations_traced", "iterations_aborted", "fallbacks",
            "fetches", "feeds", "eager_ops", "backwards_replayed", "graph_nodes",
            "graph_branches", "phase")},
    }


def _print_loops(results: dict) -> None:
    names = list(results)
    rows = [
        ("steady iterations (each side)", "steady_iterations", "{:d}"),
        ("iteration eager, median (ms)", "eager_ms", "{:.3f}"),
        ("iteration terra, median (ms)", "terra_ms", "{:.3f}"),
        ("speedup (medians)", "speedup", "{:.2f}"),
        ("block eager, per iteration (ms)", "eager_block_ms_per_iteration", "{:.3f}"),
        ("block terra + sync, per it. (ms)", "terra_block_ms_per_iteration", "{:.3f}"),
        ("speedup (blocks)", "speedup_blocks", "{:.2f}"),
        ("co-execution from step (0-based)", "coexec_from_step", "{:d}"),
        ("ops per co-executed iteration", "ops_per_coexecuted_iteration", "{:.0f}"),
        ("GraphRunner µs per node", "runner_us_per_node", "{:.2f}"),
        ("GraphRunner ms per iteration", "runner_ms_per_coexecuted_iteration", "{:.3f}"),
    ]
    print(f"{'loop':34s}" + "".join(f"{n:>10s}" for n in names))
    for label, key, fmt in rows:
        print(f"{label:34s}" + "".join(f"{fmt.format(results[n][key]):>10s}" for n in names))
    for name in names:
        r, s = results[name], results[name]["stats"]
        print(f"{name} stats: coexecuted {s['iterations_coexecuted']}, traced "
              f"{s['iterations_traced']}, fallbacks {s['fallbacks']}, fetches {s['fetches']}, "
              f"eager_ops {s['eager_ops']}, backwards replayed {s['backwards_replayed']}, "
              f"phase {s['phase']}; "
              f"equal: {'yes' if r['equal'] else 'no'}")


def _machine() -> dict:
    return {
        "processor": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "intra_op_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=50,
                        help="iterations of the per-op measurements (medians)")
    parser.add_argument("--size", type=int, default=64, help="elements per add operand")
    parser.add_argument("--loops", default=",".join(LOOPS),
                        help=f"comma-separated subset of {','.join(LOOPS)}")
    parser.add_argument("--rounds", type=int, default=10,
                        help="rounds of one eager and one Terra block per loop")
    parser.add_argument("--block", type=int, default=50,
                        help="steps per block (longer than the ~10 iterations backpressure "
                             "lets Python run ahead of the GraphRunner)")
    parser.add_argument("--warmup-rounds", type=int, default=2,
                        help="first rounds left out of the steady-state figures")
    parser.add_argument("--mlp-width", type=int, default=64)
    parser.add_argument("--mlp-batch", type=int, default=32)
    parser.add_argument("--cnn-batch", type=int, default=8)
    parser.add_argument("--lstm-hidden", type=int, default=64)
    parser.add_argument("--lstm-seq", type=int, default=16)
    parser.add_argument("--lstm-batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=0,
                        help="intra-op threads for eager and Terra alike (torch.set_num_threads; "
                             "0: torch's default, one per core)")
    parser.add_argument("--json", metavar="PATH", help="also write every figure here as JSON")
    args = parser.parse_args()
    names = [n for n in args.loops.split(",") if n]
    unknown = set(names) - set(LOOPS)
    if unknown or args.warmup_rounds >= args.rounds:
        parser.error(f"unknown loops {sorted(unknown)}" if unknown
                     else "--warmup-rounds must be below --rounds")

    if args.threads > 0:
        torch.set_num_threads(args.threads)  # before the engine: its runner follows it
    machine, load_start = _machine(), os.getloadavg()
    print(f"machine: {machine['processor']}, {machine['cores']} cores, torch {machine['torch']}, "
          f"threads {machine['intra_op_threads']}, python {machine['python']}, "
          f"load average {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}")
    costs = per_op_costs(args.size, args.iterations)
    for key, value in costs.items():
        print(f"{key:32s} {value:8.2f}")
    loops = {}
    for seed, name in enumerate(names):
        loops[name] = side_by_side(name, LOOPS[name](args, 100 * seed), args.rounds, args.block,
                                   args.warmup_rounds)
    _print_loops(loops)
    load_end = os.getloadavg()
    print(f"load average at the end {load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as stream:
            json.dump({"date": datetime.datetime.now(datetime.timezone.utc).isoformat(
                           timespec="seconds"),
                       "machine": machine, "load_average_start": load_start,
                       "load_average_end": load_end, "arguments": vars(args),
                       "per_op": costs, "loops": loops}, stream, indent=1)
            stream.write("\n")
    return 0 if all(r["equal"] for r in loops.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
