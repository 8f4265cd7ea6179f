"""One of the micro-benchmark's training loops as a plain script loop, for the region policy.

    .venv/bin/python bench/plain_loop.py [--loop lstm] [--steps 400] [--threads 2]
    .venv/bin/python -m terra run bench/plain_loop.py [same arguments]

`bench/engine_microbench.py` runs its loops inside `terra.iteration`, an explicit region the
policy never judges. Here the step runs in an ordinary `for` loop, which `terra run` marks,
probes and judges (terra/regions.py), so the speed check decides as it would for a user's
script. Prints the final parameters' checksum on stdout (the same eagerly and under Terra)
and, on stderr, the mean ms per step of each block of `--block` steps (a `.item()` ends each
block, so the GraphRunner's work is in it) and, under Terra, the policy's decisions. A
benchmark, not a test.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
import types

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import engine_microbench  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loop", default="lstm", choices=sorted(engine_microbench.LOOPS))
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--block", type=int, default=50)
    parser.add_argument("--threads", type=int, default=0, help="0: torch's default")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    sizes = types.SimpleNamespace(mlp_width=64, mlp_batch=32, cnn_batch=8, lstm_hidden=64,
                                  lstm_seq=16, lstm_batch=8)
    loop = engine_microbench.LOOPS[args.loop](sizes, 0)()
    blocks, started = [], time.perf_counter()
    for i in range(args.steps):
        loop.step(i)
        if (i + 1) % args.block == 0:
            next(loop.modules[0].parameters()).sum().item()  # waits for the block's work
            now = time.perf_counter()
            blocks.append((now - started) / args.block * 1e3)
            started = now
    digest = hashlib.sha256()
    for module in loop.modules:
        for value in module.state_dict().values():
            digest.update(value.detach().contiguous().numpy().tobytes())
    print(args.loop, "parameters", digest.hexdigest()[:16])
    print("ms per step, by block:", " ".join(f"{b:.3f}" for b in blocks), file=sys.stderr)
    if "terra.regions" in sys.modules:
        for site in sys.modules["terra.regions"].POLICY.describe():
            print(f"policy: {site['name']} {site['status']} ({site['reason']}) "
                  f"{site['speedup']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
