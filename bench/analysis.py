"""Turns run records into the suite's measurements: steady state, warm-up,
correctness against eager, speedup, and a per-(program, system) summary.

Definitions (also in docs/benchmarks.md):

* steady-state reference M: the median iteration time of the run's second half;
* warm-up ends at the first iteration k that is itself at most `STEADY_BAND`
  above M and after which the running median (of iterations k..j, for every
  j >= k + WINDOW - 1) stays at most `STEADY_BAND` above M (a running median,
  so that a lone slow iteration later on — a sampling step, a garbage
  collection, another process taking the core — does not count as warm-up);
* steady-state iteration time: the median of the iterations from k on;
* warm-up time: the system's preparation (TorchScript compilation, explain
  excluded) plus the iterations before k; torch.compile compiles inside them;
* correct: Terra's loss curve and whole stdout must equal eager's exactly;
  a compiled system's loss curve must have the same length and every loss
  within `COMPILED_RTOL` times the curve's scale (the largest |loss| of eager's
  curve) of eager's: relative to the scale, not to each loss, because
  rounding differences compound over training steps and a loss near zero
  would otherwise turn a tiny absolute drift into a large relative one;
* speedup: eager's steady time / the system's, taken within one repetition
  (the systems of a repetition run back to back) and then the median over
  repetitions.
"""

import math
import statistics

WINDOW = 3
STEADY_BAND = 0.10
COMPILED_RTOL = 2e-2


def steady_state(iter_s, prepare_s=0.0):
    """{'warmup_iters', 'warmup_s', 'steady_s', 'steady_mean_s', 'steady_n'} of one run's times."""
    n = len(iter_s)
    if n == 0:
        return None
    limit = (1 + STEADY_BAND) * statistics.median(iter_s[n // 2 :])
    start = next((k for k in range(n) if _stays_steady(iter_s, k, limit)), n - 1)
    steady = iter_s[start:]
    return {
        "warmup_iters": start,
        "warmup_s": prepare_s + sum(iter_s[:start]),
        "steady_s": statistics.median(steady),
        "steady_mean_s": statistics.fmean(steady),
        "steady_n": len(steady),
    }


def _stays_steady(iter_s, k, limit):
    """Iteration k is within the limit, and so is the running median from k to every later j
    (from WINDOW iterations on, so that one noisy iteration right after k does not decide)."""
    if iter_s[k] > limit:
        return False
    return all(statistics.median(iter_s[k : j + 1]) <= limit for j in range(k + WINDOW - 1, len(iter_s)))


def compare_losses(system, losses, reference_losses, stdout, reference_stdout):
    """{'correct', 'max_rel_diff', 'detail'}: this run's loss curve against eager's."""
    if len(losses) != len(reference_losses):
        return {"correct": False, "max_rel_diff": None, "detail": f"{len(losses)} vs {len(reference_losses)} losses"}
    scale = max((abs(float(b)) for b in reference_losses if not math.isnan(float(b))), default=1.0) or 1.0
    diffs = [_scaled_difference(a, b, scale) for a, b in zip(losses, reference_losses)]
    worst = max(diffs, default=0.0)
    if system == "terra":
        same_losses = losses == reference_losses
        same_stdout = stdout == reference_stdout
        detail = "bitwise equal" if same_losses and same_stdout else (
            "loss curve differs" if not same_losses else "losses equal, other stdout differs"
        )
        return {"correct": same_losses and same_stdout, "max_rel_diff": worst, "detail": detail}
    ok = all(d <= COMPILED_RTOL for d in diffs)
    detail = f"max diff {worst:.1e} of scale" + ("" if ok else f" > {COMPILED_RTOL:g}")
    return {"correct": ok, "max_rel_diff": worst, "detail": detail}


def _scaled_difference(a, b, scale):
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return 0.0 if (math.isnan(a) and math.isnan(b)) else math.inf
    return abs(a - b) / scale


def summarize(records, programs, systems):
    """One summary per (program, system) over repetitions, plus per-system geometric means."""
    by_key = {}
    for r in records:
        by_key.setdefault((r["program"], r["system"]), []).append(r)
    eager_by_rep = {(r["program"], r["rep"]): r for r in records if r["system"] == "eager" and r["runs"]}
    rows = []
    for program in programs:
        for system in systems:
            runs = sorted(by_key.get((program, system), []), key=lambda r: r["rep"])
            if runs:
                rows.append(_summarize_cell(program, system, runs, eager_by_rep))
    return {"rows": rows, "geomean_speedup": _geomeans(rows, systems)}


def _compare_with_eager(row, program, system, runs, eager_by_rep):
    """Sets row's correct/correctness/max_rel_diff from the runs' loss curves and stdout;
    False when no eager run of the same repetition exists to compare with."""
    checks = [
        compare_losses(system, run["losses"], eager["losses"], run["stdout"], eager["stdout"])
        for run in runs
        if (eager := eager_by_rep.get((program, run["rep"]))) is not None
    ]
    if not checks:
        return False
    worst = max(checks, key=lambda c: (not c["correct"], c["max_rel_diff"] or 0.0))
    row.update(
        correct=all(c["correct"] for c in checks),
        correctness=worst["detail"],
        max_rel_diff=worst["max_rel_diff"],
    )
    return True


def _summarize_cell(program, system, runs, eager_by_rep):
    failed = [r for r in runs if not r["runs"]]
    row = {
        "program": program,
        "system": system,
        "repetitions": len(runs),
        "runs": not failed,
        "error": failed[0]["error"] if failed else None,
        "peak_rss_mb": max((r["peak_rss_mb"] for r in runs if r.get("peak_rss_mb") is not None), default=None),
    }
    row.update(_diagnostics(system, runs))
    if failed:
        if all(r["error"]["class"] == "NoCoexecution" for r in failed):
            # It ran to the end, only eagerly: its output is still Terra's to answer for.
            _compare_with_eager(row, program, system, runs, eager_by_rep)
        return row
    states = [steady_state(r["timing"]["iter_s"], r["timing"].get("prepare_s", 0.0)) for r in runs]
    row["steady_ms"] = 1000 * statistics.median(s["steady_s"] for s in states)
    row["steady_mean_ms"] = 1000 * statistics.median(s["steady_mean_s"] for s in states)
    row["warmup_iters"] = statistics.median(s["warmup_iters"] for s in states)
    row["warmup_s"] = statistics.median(s["warmup_s"] for s in states)
    row["first_iter_ms"] = 1000 * statistics.median(r["timing"]["iter_s"][0] for r in runs)
    if system == "eager":
        row.update(correct=True, correctness="reference", speedup=1.0)
        return row
    if not _compare_with_eager(row, program, system, runs, eager_by_rep):
        row.update(correct=None, correctness="no eager run to compare with", speedup=None)
        return row
    speedups = [
        steady_state(eager["timing"]["iter_s"])["steady_s"] / state["steady_s"]
        for run, state in zip(runs, states)
        if (eager := eager_by_rep.get((program, run["rep"]))) is not None
    ]
    row["speedup"] = statistics.median(speedups)
    return row


def _diagnostics(system, runs):
    """Graph breaks (torch.compile), fetches and fallbacks (Terra), script-or-trace (TorchScript)."""
    last = runs[-1]
    timing = last.get("timing") or {}
    if system == "terra":
        stats = last.get("terra_stats")
        keys = ("iterations_traced", "iterations_coexecuted", "fallbacks", "fetches", "feeds", "graph_nodes")
        loop = last.get("training_loop") or {}
        return {
            "terra": None if stats is None else {k: stats.get(k) for k in keys},
            "terra_training_loop": loop,
            "training_loop_coexecuted": all(
                ((r.get("training_loop") or {}).get("iterations_coexecuted") or 0) > 0 for r in runs
            ),
        }
    if system.startswith("compile"):
        dynamo = timing.get("dynamo")
        return {"explain": timing.get("explain"), "dynamo": dynamo}
    if system == "torchscript":
        return {"torchscript": timing.get("prepare")}
    return {}


def _geomeans(rows, systems):
    """Per system: geometric mean of speedups over programs that ran and were correct."""
    means = {}
    for system in systems:
        values = [r["speedup"] for r in rows if r["system"] == system and r.get("correct") and r.get("speedup")]
        means[system] = {
            "geomean": math.exp(sum(map(math.log, values)) / len(values)) if values else None,
            "programs": len(values),
        }
    return means
