"""Writes the suite's results: results.json, results.md and speedup.{png,svg}."""

import json
import os

from bench.analysis import COMPILED_RTOL, STEADY_BAND, WINDOW
from bench.registry import SYSTEM_LABELS

FAIL_COLOR = "#c0392b"
SYSTEM_COLORS = {
    "terra": "#2e86de",
    "compile": "#f39c12",
    "compile-fullgraph": "#8e44ad",
    "torchscript": "#27ae60",
}


def write_all(out_dir, meta, records, summary):
    """Writes every output file; returns {kind: path}."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {
        "json": os.path.join(out_dir, "results.json"),
        "md": os.path.join(out_dir, "results.md"),
        "png": os.path.join(out_dir, "speedup.png"),
        "svg": os.path.join(out_dir, "speedup.svg"),
    }
    slim_records = [{k: v for k, v in r.items() if k != "stdout"} for r in records]
    with open(paths["json"], "w") as f:
        json.dump({"meta": meta, "summary": summary, "runs": slim_records}, f, indent=1)
    with open(paths["md"], "w") as f:
        f.write(markdown(meta, summary))
    chart(summary, meta, paths["png"], paths["svg"])
    return paths


def cell_text(row):
    """Short text of one (program, system) result for the overview table."""
    if row is None:
        return "—"
    if not row["runs"]:
        return f"**fails**: {row['error']['class']}"
    if row["system"] == "eager":
        return f"{row['steady_ms']:.1f} ms"
    if row.get("speedup") is None:
        return f"runs, {row['steady_ms']:.1f} ms (no eager run to compare)"
    if row.get("correct") is False:
        return f"**wrong** ({row['correctness']}) {row['speedup']:.2f}×"
    if row["system"] == "terra" and not row.get("training_loop_coexecuted"):
        return f"{row['speedup']:.2f}× (training loop not co-executed)"
    return f"{row['speedup']:.2f}×"


def markdown(meta, summary):
    """The Markdown report: an overview (speedup per program and system) and the details."""
    rows = summary["rows"]
    programs = list(dict.fromkeys(r["program"] for r in rows))
    systems = [s for s in meta["systems"] if any(r["system"] == s for r in rows)]
    lookup = {(r["program"], r["system"]): r for r in rows}
    out = [f"# Benchmark results ({meta['mode']} mode)", ""]
    out.append(
        f"{meta['iters']} iterations per run, {meta['reps']} repetition(s), {meta['threads']} intra-op thread(s), "
        f"time limit {meta['timeout_s']} s per run; {meta['machine']}; torch {meta['versions']['torch']}, "
        f"Python {meta['versions']['python']}. Started {meta['started']}, took {meta['elapsed_s']:.0f} s."
    )
    if meta.get("interrupted"):
        out += ["", "**Interrupted run**: only the runs that finished are reported (from runs/records.jsonl)."]
    if meta.get("note"):
        out += ["", f"Note: {meta['note']}."]
    out += ["", "Eager: steady-state ms per iteration. Others: speedup over eager (higher is better).", ""]
    out.append("| program | " + " | ".join(systems) + " |")
    out.append("|---|" + "---|" * len(systems))
    for program in programs:
        out.append(f"| {program} | " + " | ".join(cell_text(lookup.get((program, s))) for s in systems) + " |")
    geo = summary["geomean_speedup"]
    out.append(
        "| **geomean** (correct runs) | "
        + " | ".join(
            "—" if s == "eager" or not geo[s]["geomean"] else f"{geo[s]['geomean']:.2f}× ({geo[s]['programs']})"
            for s in systems
        )
        + " |"
    )
    out += ["", "Warm-up: seconds until steady state (preparation and compilation included), and iterations.", ""]
    out.append("| program | " + " | ".join(systems) + " |")
    out.append("|---|" + "---|" * len(systems))
    for program in programs:
        out.append(f"| {program} | " + " | ".join(_warmup_text(lookup.get((program, s))) for s in systems) + " |")
    out += ["", "## Details", ""]
    out.append(
        "| program | system | runs | correct | steady ms (median) | speedup | warm-up iters | warm-up s "
        "| first iter ms | peak RSS MiB | diagnostics |"
    )
    out.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        out.append(_detail_line(r))
    out += ["", "## Definitions", ""]
    out += [
        f"- Steady state starts at the first iteration at most {STEADY_BAND:.0%} above the median M of the run's "
        f"second half after which the running median (over at least {WINDOW} iterations) stays at most "
        f"{STEADY_BAND:.0%} above M; steady time is the median "
        "from there; warm-up is the iterations before it plus the system's preparation (TorchScript "
        "compilation; torch.compile compiles during the first iterations, with a cold Inductor cache).",
        "- Correct: Terra must reproduce eager's loss curve and whole stdout exactly; compiled systems "
        f"must match every loss within {COMPILED_RTOL:g} × the curve's scale (largest |loss| of eager's curve).",
        "- Speedup: eager steady time / system steady time within the same repetition (systems run back to "
        "back, in rotating order), median over repetitions. Geomean over programs the system ran correctly.",
        "- Peak RSS: ru_maxrss of the program's process (os.wait4).",
    ]
    return "\n".join(out) + "\n"


def _warmup_text(row):
    if row is None:
        return "—"
    if not row["runs"]:
        return "fails"
    return f"{row['warmup_s']:.1f} s ({row['warmup_iters']:.0f} it)"


def _detail_line(r):
    fmt = lambda v, f: "—" if v is None else format(v, f)
    correct = "—" if not r["runs"] else {True: "yes", False: "no", None: "?"}[r.get("correct")]
    if not r["runs"]:
        correct = "—"
    cells = [
        r["program"],
        r["system"],
        "yes" if r["runs"] else f"no: {r['error']['class']}: {_escape(r['error']['message'])[:160]}",
        correct + ("" if not r["runs"] or r["system"] == "eager" else f" ({r.get('correctness')})"),
        fmt(r.get("steady_ms"), ".1f"),
        fmt(r.get("speedup"), ".2f"),
        fmt(r.get("warmup_iters"), ".0f"),
        fmt(r.get("warmup_s"), ".2f"),
        fmt(r.get("first_iter_ms"), ".0f"),
        fmt(r.get("peak_rss_mb"), ".0f"),
        _escape(diagnostics_text(r)),
    ]
    return "| " + " | ".join(cells) + " |"


def diagnostics_text(r):
    """Graph breaks, Terra's fetches/fallbacks or TorchScript's method, in a few words."""
    if r["system"] == "terra":
        t = r.get("terra")
        if t is None:
            return "no TERRA_STATS written"
        if all(v is None for v in t.values()):
            return "TERRA_STATS written without stats (no engine)"
        loop = r.get("terra_training_loop") or {}
        return (
            f"training loop (line {loop.get('line')}): traced {loop.get('iterations_traced')}, "
            f"co-executed {loop.get('iterations_coexecuted')}, fallbacks {loop.get('fallbacks')}; "
            f"all regions: traced {t['iterations_traced']}, co-executed {t['iterations_coexecuted']}, "
            f"fetches {t['fetches']}, fallbacks {t['fallbacks']}"
        )
    if r["system"].startswith("compile"):
        parts = []
        for e in r.get("explain") or []:
            if "error" in e:
                parts.append(f"explain({e['model']}) failed: {e['error'][:80]}")
                continue
            reasons = "; ".join(f"{x['count']}× {x['reason'][:70]}" for x in e["break_reasons"][:2])
            parts.append(f"explain({e['model']}): {e['graph_break_count']} breaks" + (f" [{reasons}]" if reasons else ""))
        d = r.get("dynamo")
        if d:
            parts.append(f"in run: {d['graph_breaks']} breaks, {d['unique_graphs']} graphs")
        return "; ".join(parts)
    if r["system"] == "torchscript":
        methods = r.get("torchscript") or []
        return "; ".join(
            f"{m['model']}: {m['method']}" + (f" (script failed: {m['script_error'][:80]})" if "script_error" in m else "")
            for m in methods
        )
    return ""


def _escape(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def chart(summary, meta, png_path, svg_path):
    """Grouped bars: speedup over eager per program and system; failures and wrong results marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summary["rows"]
    programs = list(dict.fromkeys(r["program"] for r in rows))
    systems = [s for s in meta["systems"] if s != "eager" and any(r["system"] == s for r in rows)]
    lookup = {(r["program"], r["system"]): r for r in rows}
    fig, ax = plt.subplots(figsize=(max(8, 1.2 * len(programs) + 2), 4.8))
    width = 0.8 / max(len(systems), 1)
    top = max([r.get("speedup") or 1.0 for r in rows if r["runs"]] + [1.5])
    for j, system in enumerate(systems):
        for i, program in enumerate(programs):
            x = i + (j - (len(systems) - 1) / 2) * width
            row = lookup.get((program, system))
            color = SYSTEM_COLORS.get(system, "grey")
            if row is None:
                continue
            if not row["runs"]:
                ax.plot(x, 0.05 * top, marker="x", color=FAIL_COLOR, markersize=9, mew=2.5)
                continue
            if row.get("speedup") is None:
                continue
            wrong = row.get("correct") is False
            partial = system == "terra" and not row.get("training_loop_coexecuted")
            hatch = "///" if wrong else ("..." if partial else None)
            ax.bar(x, row["speedup"], width, color="white" if wrong or partial else color, edgecolor=color,
                   hatch=hatch)
    for j, system in enumerate(systems):
        ax.bar(0, 0, 0, color=SYSTEM_COLORS.get(system, "grey"), label=system)
    ax.plot([], [], "x", color=FAIL_COLOR, mew=2.5, label="fails to run")
    ax.bar(0, 0, 0, color="white", edgecolor="grey", hatch="///", label="runs, result differs from eager")
    if "terra" in systems:
        ax.bar(0, 0, 0, color="white", edgecolor=SYSTEM_COLORS["terra"], hatch="...",
               label="terra: training loop not co-executed")
    ax.axhline(1.0, color="black", linewidth=1, linestyle="--")
    ax.set_xticks(range(len(programs)))
    ax.set_xticklabels(programs, rotation=30, ha="right")
    ax.set_ylabel("speedup over eager (×)")
    ax.set_title(f"Steady-state speedup over eager PyTorch ({meta['mode']} mode, {meta['threads']} thread(s))")
    ax.legend(fontsize=8, loc="upper left", ncol=3)
    ax.set_ylim(0, top * 1.25)
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)
    fig.savefig(svg_path)
    plt.close(fig)
