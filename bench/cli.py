"""`python -m bench [--quick|--full] [--programs a,b] [--systems x,y] [--out DIR]`.

Runs every selected program under every selected system, each in its own
subprocess with a time limit, repetition by repetition; within a repetition the
systems of one program run back to back in an order that rotates between
repetitions, so that slow drifts of the machine's load cancel in the speedups.
Exit status: 0 when the suite ran (whatever the programs did), 2 on bad input.
"""

import argparse
import datetime
import json
import os
import platform
import sys
import time

from bench import analysis, registry, report, runner

# Quick mode leaves torch.compile out by default: a cold Inductor compile takes
# 30-120 s per program on two cores, ten programs would not fit in ~5 minutes.
MODES = {
    "quick": {"iters": 10, "reps": 1, "timeout_s": 240, "systems": ("eager", "terra", "torchscript")},
    "full": {"iters": 40, "reps": 2, "timeout_s": 300, "systems": registry.SYSTEMS},
}


class UsageError(Exception):
    """Bad command-line input: reported with the valid choices, exit status 2."""


def parse_arguments(argv):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_const", dest="mode", const="quick", help="few iterations (default)")
    mode.add_argument("--full", action="store_const", dest="mode", const="full", help="the measured run")
    parser.add_argument("--programs", help="comma list of programs (name, file stem or number); default all")
    parser.add_argument("--systems", help=f"comma list of {', '.join(registry.SYSTEMS)} or 'all'; default per mode")
    parser.add_argument("--out", default=str(registry.REPO_ROOT / "artifacts" / "bench"), help="output directory")
    parser.add_argument("--iters", type=int, help="iterations per run (default per mode)")
    parser.add_argument("--reps", type=int, help="repetitions (default per mode)")
    parser.add_argument("--timeout", type=float, help="seconds per run (default per mode)")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads of every run (default 1)")
    parser.add_argument("--program-dir", help="directory of NN_name.py programs (default bench/programs)")
    parser.add_argument(
        "--rereport", action="store_true", help="run nothing: recompute the reports from --out's results.json and runs/"
    )
    args = parser.parse_args(argv)
    args.mode = args.mode or "quick"
    return args


def resolve(args):
    """Settings of this invocation; raises UsageError on unknown names or bad numbers."""
    mode = MODES[args.mode]
    try:
        programs = registry.resolve_programs(args.programs, args.program_dir)
        systems = registry.resolve_systems(args.systems, mode["systems"])
    except ValueError as error:
        raise UsageError(str(error)) from None
    settings = {
        "mode": args.mode,
        "programs": programs,
        "systems": systems,
        "iters": args.iters or mode["iters"],
        "reps": args.reps or mode["reps"],
        "timeout_s": args.timeout or mode["timeout_s"],
        "threads": args.threads,
        "out": os.path.abspath(args.out),
        "program_dir": args.program_dir,
    }
    if settings["iters"] < 4 or settings["reps"] < 1 or settings["threads"] < 1 or settings["timeout_s"] <= 0:
        raise UsageError("--iters must be >= 4, --reps, --threads and --timeout positive")
    return settings


def main(argv=None):
    args = parse_arguments(argv)
    if args.rereport:
        return rereport(os.path.abspath(args.out))
    try:
        settings = resolve(args)
    except UsageError as error:
        print(f"python -m bench: error: {error}", file=sys.stderr)
        return 2
    records, started = run_suite(settings)
    summary = analysis.summarize(records, settings["programs"], settings["systems"])
    meta = describe(settings, started)
    paths = report.write_all(settings["out"], meta, records, summary)
    print(f"bench: wrote {', '.join(paths.values())}")
    return 0


def rereport(out_dir):
    """Rebuilds summary, Markdown and chart of an earlier run from its records and logs
    (results.json, else runs/records.jsonl + runs/meta.json of an interrupted run)."""
    try:
        meta, records = _load_records(out_dir)
    except (OSError, ValueError, KeyError) as error:
        print(f"python -m bench: error: no readable results in {out_dir}: {error}", file=sys.stderr)
        return 2
    scripts = registry.programs(meta.get("program_dir"))
    for record in records:
        with open(record["stdout_file"], errors="replace") as f:
            record["stdout"] = f.read()
        if record["system"] == "terra":
            record["training_loop"] = runner.training_loop_region(scripts[record["program"]], record["terra_stats"])
        record["runs"], record["error"] = runner.judge(record, record["iters"], record["stderr_file"])
    summary = analysis.summarize(records, meta["programs"], meta["systems"])
    paths = report.write_all(out_dir, meta, records, summary)
    print(f"bench: rewrote {', '.join(paths.values())}")
    return 0


def _load_records(out_dir):
    results = os.path.join(out_dir, "results.json")
    if os.path.exists(results):
        with open(results) as f:
            data = json.load(f)
        return data["meta"], data["runs"]
    with open(os.path.join(out_dir, "runs", "meta.json")) as f:
        meta = json.load(f)
    with open(os.path.join(out_dir, "runs", "records.jsonl")) as f:
        records = [json.loads(line) for line in f if line.strip()]
    meta["elapsed_s"] = sum(r["wall_s"] or 0.0 for r in records)
    meta["interrupted"] = True
    return meta, records


def run_suite(settings):
    """Runs every (repetition, program, system); returns the records and the start time."""
    started = time.time()
    logs = os.path.join(settings["out"], "runs")
    os.makedirs(logs, exist_ok=True)
    journal = os.path.join(logs, "records.jsonl")  # one line per finished run: an interrupted suite keeps them
    open(journal, "w").close()
    with open(os.path.join(logs, "meta.json"), "w") as f:
        json.dump(describe(settings, started), f)
    scripts = registry.programs(settings["program_dir"])
    systems, records = settings["systems"], []
    for rep in range(settings["reps"]):
        order = systems[rep % len(systems) :] + systems[: rep % len(systems)]
        for program in settings["programs"]:
            for system in order:
                record = runner.run_program(
                    program, scripts[program], system, rep, settings["iters"], settings["threads"],
                    settings["timeout_s"], logs,
                )
                records.append(record)
                with open(journal, "a") as f:
                    f.write(json.dumps({k: v for k, v in record.items() if k != "stdout"}) + "\n")
                print(_progress_line(record), flush=True)
    return records, started


def _progress_line(record):
    head = f"bench: rep {record['rep']} {record['program']:<18} {record['system']:<18}"
    if not record["runs"]:
        return f"{head} FAILS {record['error']['class']}: {record['error']['message'][:100]}"
    times = record["timing"]["iter_s"]
    return f"{head} ok  {record['wall_s']:6.1f} s wall, last iteration {1000 * times[-1]:.1f} ms"


def describe(settings, started):
    """Machine, versions and settings of this run, for the reports."""
    import numpy
    import torch

    return {
        "mode": settings["mode"],
        "systems": settings["systems"],
        "programs": settings["programs"],
        "iters": settings["iters"],
        "reps": settings["reps"],
        "threads": settings["threads"],
        "timeout_s": settings["timeout_s"],
        "program_dir": settings["program_dir"],
        "started": datetime.datetime.fromtimestamp(started, datetime.timezone.utc).isoformat(timespec="seconds"),
        "elapsed_s": time.time() - started,
        "machine": _machine(),
        "load_average_at_end": os.getloadavg(),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": numpy.__version__,
        },
    }


def _machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPU(s), {platform.system()} {platform.release()}"
