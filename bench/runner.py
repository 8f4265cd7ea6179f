"""Runs one program under one system in its own subprocess and records what happened.

A run never raises: a crash, a time-out or a missing timing file becomes a
record with `runs: False` and the error's class and message, so the rest of the
suite goes on.
"""

import ast
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from bench.registry import REPO_ROOT

ITER_LINE = re.compile(r"^iter (\d+) loss (\S+)")
NO_MODULE_LINE = re.compile(r"^\S*python[\d.]*: (No module named .*)$")
TRACEBACK_END = re.compile(r"^([A-Za-z_][\w.]*)(?::\s*(.*))?$")
EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning|Failure)\w*)(?::\s*(.*))?$")


def command_for(system, script, iters, timing_file):
    """The argv that runs `script` under `system` (Terra runs the eager program)."""
    python = sys.executable
    common = ["--iters", str(iters), "--timing-file", timing_file]
    if system == "terra":
        return [python, "-m", "terra", "run", str(script), "--system", "eager", *common]
    extra = ["--explain"] if system == "compile" else []
    return [python, str(script), "--system", system, *extra, *common]


def environment_for(system, threads, stats_file, scratch):
    """The child's environment: the repo importable, fixed threads and hashing."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env["OMP_NUM_THREADS"] = str(threads)
    env["MKL_NUM_THREADS"] = str(threads)
    env["PYTHONHASHSEED"] = "0"
    env.pop("TERRA_DISABLE", None)
    if system == "terra":
        env["TERRA_STATS"] = stats_file
    if system.startswith("compile"):
        # a fresh Inductor cache per run: the warm-up column measures a cold compile
        env["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(scratch, "inductor")
        env["TRITON_CACHE_DIR"] = os.path.join(scratch, "triton")
    return env


def run_program(program, script, system, rep, iters, threads, timeout_s, log_dir):
    """Runs one (program, system) repetition; returns its record (a dict)."""
    base = os.path.join(log_dir, f"{program}__{system}__rep{rep}")
    stdout_path, stderr_path = base + ".stdout", base + ".stderr"
    timing_file, stats_file = base + ".timing.json", base + ".terra_stats.json"
    for stale in (timing_file, stats_file):
        if os.path.exists(stale):
            os.remove(stale)
    scratch = tempfile.mkdtemp(prefix="terra-bench-")
    argv = command_for(system, script, iters, timing_file)
    record = {"program": program, "system": system, "rep": rep, "iters": iters, "command": argv}
    try:
        outcome = _run_with_limit(argv, environment_for(system, threads, stats_file, scratch), timeout_s,
                                  stdout_path, stderr_path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    record.update(outcome)
    record["stdout_file"], record["stderr_file"] = stdout_path, stderr_path
    with open(stdout_path, errors="replace") as f:
        stdout = f.read()
    record["stdout"] = stdout
    record["losses"] = _loss_curve(stdout)
    record["timing"] = _read_json(timing_file)
    record["terra_stats"] = _read_json(stats_file) if system == "terra" else None
    if system == "terra":
        record["training_loop"] = training_loop_region(script, record["terra_stats"])
    record["runs"], record["error"] = judge(record, iters, stderr_path)
    return record


def _run_with_limit(argv, env, timeout_s, stdout_path, stderr_path):
    """Runs argv in a new process group; kills that group at the time limit.

    Returns exit status, wall time, peak RSS (ru_maxrss of the child, MiB) and
    whether it timed out. os.wait4 gives the rusage of exactly this child.
    """
    started = time.perf_counter()
    with open(stdout_path, "w") as out, open(stderr_path, "w") as err:
        child = subprocess.Popen(argv, stdout=out, stderr=err, env=env, cwd=str(REPO_ROOT), start_new_session=True)
        timed_out = False
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid == child.pid:
                break
            if time.perf_counter() - started > timeout_s and not timed_out:
                timed_out = True
                os.killpg(child.pid, signal.SIGKILL)
            time.sleep(0.02)
    child.returncode = os.waitstatus_to_exitcode(status)  # already reaped: tell Popen
    return {
        "returncode": child.returncode,
        "timed_out": timed_out,
        "wall_s": time.perf_counter() - started,
        "peak_rss_mb": usage.ru_maxrss / 1024.0,
    }


def _loss_curve(stdout):
    """[loss per iteration] from the programs' 'iter N loss X ...' lines, as printed."""
    curve = []
    for line in stdout.splitlines():
        match = ITER_LINE.match(line)
        if match:
            curve.append(match.group(2))
    return curve


def judge(record, iters, stderr_path):
    """(runs, error) where error is None or {'class', 'message'}."""
    if record["timed_out"]:
        return False, {"class": "Timeout", "message": f"no result within the time limit ({record['wall_s']:.0f} s)"}
    if record["returncode"] != 0:
        return False, _error_from_stderr(stderr_path, record["returncode"])
    if record["timing"] is None or len(record["timing"].get("iter_s", [])) != iters:
        return False, {"class": "IncompleteRun", "message": "exit status 0 but no complete timing file"}
    if len(record["losses"]) != iters:
        return False, {"class": "IncompleteRun", "message": f"{len(record['losses'])} of {iters} loss lines printed"}
    if record["system"] == "terra":
        return judge_coexecution(record["terra_stats"], stderr_path)
    return True, None


def training_loop_line(script):
    """Line of the program's training loop: the `for` over `range(args.iters)`."""
    for node in ast.walk(ast.parse(open(script).read())):
        if isinstance(node, ast.For) and "args.iters" in ast.unparse(node.iter):
            return node.lineno
    return None


def training_loop_region(script, stats):
    """{'line', 'iterations_traced', 'iterations_coexecuted', 'fallbacks'} of the Terra
    region of the training loop; its counts are None when no region was reported there."""
    line = training_loop_line(script)
    found = {"line": line, "iterations_traced": None, "iterations_coexecuted": None, "fallbacks": None}
    path = os.path.realpath(script)
    for region in (stats or {}).get("regions", []):
        same_file = os.path.realpath(str(region.get("file", ""))) == path
        if same_file and region.get("line") == line:
            found.update({k: region.get(k) for k in ("iterations_traced", "iterations_coexecuted", "fallbacks")})
    return found


def judge_coexecution(stats, stderr_path):
    """A Terra run that never co-executed an iteration is eager in disguise: not a Terra result."""
    coexecuted = (stats or {}).get("iterations_coexecuted") or 0
    if coexecuted > 0:
        return True, None
    if stats:  # the engine ran but never got past tracing
        counts = ", ".join(f"{k} {stats.get(k)}" for k in ("iterations_traced", "fallbacks", "fetches"))
        return False, {"class": "NoCoexecution", "message": f"iterations_coexecuted is 0 in TERRA_STATS ({counts})"}
    with open(stderr_path, errors="replace") as f:
        said = [line.strip() for line in f if "terra" in line.lower() and line.strip()]
    why = said[-1][:400] if said else "(nothing on stderr)"
    what = "no TERRA_STATS file written" if stats is None else "TERRA_STATS is empty"
    return False, {"class": "NoCoexecution", "message": f"{what}; stderr: {why}"}


def _error_from_stderr(stderr_path, returncode):
    """The exception line that ends the last Python traceback, else the last line that
    looks like one, else the last line, else the exit status."""
    with open(stderr_path, errors="replace") as f:
        lines = [line.rstrip() for line in f if line.strip()]
    raised = _traceback_exception(lines)
    if raised:
        return raised
    for line in reversed(lines):
        missing = NO_MODULE_LINE.match(line)  # the interpreter's own message for `python -m missing`
        if missing:
            return {"class": "ModuleNotFoundError", "message": missing.group(1)[:500]}
        match = EXCEPTION_LINE.match(line.strip())
        if match:
            return {"class": match.group(1), "message": (match.group(2) or "").strip()[:500]}
    if returncode < 0:
        return {"class": "Signal", "message": signal.Signals(-returncode).name}
    message = lines[-1][:500] if lines else "(no output on stderr)"
    return {"class": f"ExitStatus{returncode}", "message": message}


def _traceback_exception(lines):
    """{'class', 'message'} from the first unindented line after the last traceback header."""
    headers = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last):")]
    if not headers:
        return None
    for line in lines[headers[-1] + 1 :]:
        if line[:1].isspace():
            continue  # frames and source lines
        match = TRACEBACK_END.match(line)
        if match:
            return {"class": match.group(1), "message": (match.group(2) or "").strip()[:500]}
        return None
    return None


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
