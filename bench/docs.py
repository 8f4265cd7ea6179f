"""Puts a run's results into docs/benchmarks.md: `python -m bench.docs [RESULTS_DIR]`.

Only the part between the `results:begin` and `results:end` markers is
rewritten (the hand-written text around it stays), and the chart is copied to
docs/benchmarks/ so that the page's picture is committed with it.
"""

import argparse
import json
import pathlib
import shutil
import sys

from bench import report
from bench.registry import REPO_ROOT

DOC = REPO_ROOT / "docs" / "benchmarks.md"
CHART_DIR = REPO_ROOT / "docs" / "benchmarks"
BEGIN, END = "<!-- results:begin (python -m bench.docs) -->", "<!-- results:end -->"


def results_section(results_dir):
    """The generated Markdown: run settings, machine, versions, tables, chart."""
    data = json.loads((results_dir / "results.json").read_text())
    meta, summary = data["meta"], data["summary"]
    load = ", ".join(f"{x:.1f}" for x in meta.get("load_average_at_end", []))
    interrupted = " Interrupted: only the runs that finished are reported." if meta.get("interrupted") else ""
    lines = [
        BEGIN,
        "",
        f"- Run: `python -m bench --{meta['mode']}` started {meta['started']}, {meta['elapsed_s'] / 60:.0f} min; "
        f"{meta['iters']} iterations per run, {meta['reps']} repetition(s), {meta['threads']} intra-op thread(s), "
        f"{meta['timeout_s']:.0f} s limit per run.{interrupted}",
        f"- Machine: {meta['machine']}"
        + (f"; load average (1, 5, 15 min) when recorded: {load}" if load else "")
        + " (shared machine, see the caveats).",
        f"- Versions: Python {meta['versions']['python']}, torch {meta['versions']['torch']}, "
        f"numpy {meta['versions']['numpy']}.",
        f"- Chart: [docs/benchmarks/speedup.svg](benchmarks/speedup.svg) "
        f"(also `.png`; the run's own copy is in `{_relative(results_dir)}/`).",
        "",
        "![speedup over eager](benchmarks/speedup.svg)",
        "",
    ]
    body = report.markdown(meta, summary).split("\n\n", 2)[2]  # drop the title and the settings line
    lines.append(body.replace("## Details", "### Details").replace("## Definitions", "### Definitions"))
    lines.append(END)
    return "\n".join(lines)


def _relative(path):
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.docs", description=__doc__.splitlines()[0])
    parser.add_argument("results_dir", nargs="?", default=str(REPO_ROOT / "artifacts" / "bench"))
    args = parser.parse_args(argv)
    results_dir = pathlib.Path(args.results_dir)
    section = results_section(results_dir)
    text = DOC.read_text()
    if BEGIN not in text or END not in text:
        print(f"{DOC} has no {BEGIN} ... {END} markers", file=sys.stderr)
        return 1
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    DOC.write_text(head + section + tail)
    CHART_DIR.mkdir(exist_ok=True)
    for name in ("speedup.svg", "speedup.png"):
        shutil.copyfile(results_dir / name, CHART_DIR / name)
    print(f"wrote {DOC.relative_to(REPO_ROOT)} and {CHART_DIR.relative_to(REPO_ROOT)}/speedup.{{svg,png}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
