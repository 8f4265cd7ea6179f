"""A/B of the region policy's probing back-off and speed check on the benchmark programs.

    .venv/bin/python bench/policy_ab.py [--iters 40] [--rounds 2] [--programs yolo,faster]

Each program runs eagerly, under `terra run` with both policy features off (the policy as
it was before them: every probed iteration traced, no speed check), and under `terra run`
as shipped; one intra-op thread, as the benchmark suite. The order of the three rotates
every round. Prints, per program, the median steady iteration time (iterations 4 on) and
its speedup over eager, the whole run's time, and whether stdout (the loss curve) was the
same in every run. A benchmark, not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROGRAMS = REPO / "bench" / "programs"
SYSTEMS = ("eager", "policy-off", "policy-on")

# Runs a program under `terra run`, with the policy features switched off when asked.
RUN_UNDER_TERRA = """
import sys
from terra import regions
if sys.argv[1] == "policy-off":
    regions.RegionPolicy.PROBE_DENSE = 10**9        # never back off
    regions.RegionPolicy.SPEED_CHECK_AFTER = -1     # never judge speed
from terra import run
sys.exit(run.run(sys.argv[2], sys.argv[3:]))
"""


def run_once(program: Path, system: str, iters: int, scratch: Path) -> tuple[list[float], str]:
    timing = scratch / f"{program.stem}.{system}.json"
    args = [str(program), "--system", "eager", "--iters", str(iters), "--timing-file", str(timing)]
    if system == "eager":
        argv = [sys.executable, *args]
    else:
        argv = [sys.executable, "-c", RUN_UNDER_TERRA, system, *args]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, check=True)
    return json.loads(timing.read_text())["iter_s"], done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--programs", default="", help="comma-separated name parts; default all")
    args = parser.parse_args()
    wanted = [p for p in args.programs.split(",") if p]
    programs = [p for p in sorted(PROGRAMS.glob("[0-9]*_*.py"))
                if not wanted or any(w in p.stem for w in wanted)]
    results: dict[tuple[str, str], list[tuple[float, float, str]]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for r in range(args.rounds):
            order = SYSTEMS if r % 2 == 0 else tuple(reversed(SYSTEMS))
            for program in programs:
                for system in order:
                    times, stdout = run_once(program, system, args.iters, Path(scratch))
                    results.setdefault((program.stem, system), []).append(
                        (statistics.median(times[3:]) * 1e3, sum(times), stdout))
    for program in programs:
        runs = {s: results[(program.stem, s)] for s in SYSTEMS}
        median = {s: statistics.median(x[0] for x in runs[s]) for s in SYSTEMS}
        total = {s: statistics.median(x[1] for x in runs[s]) for s in SYSTEMS}
        same = len({x[2] for s in SYSTEMS for x in runs[s]}) == 1
        cells = "  ".join(f"{s} {median[s]:6.1f} ms ({median['eager'] / median[s]:.2f}x)"
                          for s in SYSTEMS)
        totals = " ".join(f"{total[s]:5.2f}" for s in SYSTEMS)
        print(f"{program.stem:20s} {cells} | run s: {totals} | stdout equal: {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
