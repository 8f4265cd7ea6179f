"""The engine's differential corpus through the Terra kernel (nbclient).

Every program of tests/coexec/corpus whose training loop is a top-level statement, so
that the script splits naturally into notebook cells (set-up, training loop, the rest):
all but three. Those three, whose loop lives inside a function (c02, c09, c27), run under
the script tests only; the one hard case of DESIGN §6 that only c27 covers, state dicts saved
and loaded between cells, has a notebook of its own below, one step per cell.

Each notebook runs the training cell twice (the second run continues training and
must continue the first run's graph: it traces fewer iterations), then the checksum
cell. Every cell's outputs must equal those of the same notebook under ipykernel
(`python3`). The Terra notebook has one extra cell after each training run printing
terra's stats; those cells are not compared, they prove co-execution happened.
"""

from __future__ import annotations

import ast
import json
import pathlib
import re
from concurrent.futures import ThreadPoolExecutor

import nbformat
import pytest
from nbclient import NotebookClient

CORPUS_DIR = pathlib.Path(__file__).resolve().parents[1] / "coexec" / "corpus"


def _has_top_level_loop(path: pathlib.Path) -> bool:
    return any(isinstance(node, ast.For) for node in ast.parse(path.read_text()).body)


NOTEBOOK_PROGRAMS = tuple(sorted(p.name for p in CORPUS_DIR.glob("c[0-9]*.py")
                                 if _has_top_level_loop(p)))
STATS_CELL = ("import json as _json\nfrom terra import _engine_api as _api\n"
              "print('TERRA-STATS', _json.dumps(_api.stats(), default=str))")


def split_cells(source: str) -> tuple[str, str, str]:
    """(set-up, training loop, rest): split at the first top-level `for` statement."""
    tree = ast.parse(source)
    lines = source.splitlines()
    loop = next(node for node in tree.body if isinstance(node, ast.For))
    setup = "\n".join(lines[: loop.lineno - 1]).strip()
    train = "\n".join(lines[loop.lineno - 1: loop.end_lineno]).strip()
    rest = "\n".join(lines[loop.end_lineno:]).strip()
    return setup, train, rest


# ipykernel has the notebook's directory on sys.path ('' first); the Terra kernel (so far)
# does not, so the corpus' sibling import needs the directory put there explicitly.
# The corpus tests co-execution itself: the region policy's speed check must not hand a
# slow loop back to plain Python (TERRA_SPEED_CHECK is read when a region is judged).
PATH_CELL = ("import os, sys\nif os.getcwd() not in sys.path:\n    sys.path.insert(0, os.getcwd())\n"
             "os.environ['TERRA_SPEED_CHECK'] = '0'")


def notebook(name: str, with_stats: bool) -> nbformat.NotebookNode:
    setup, train, rest = split_cells((CORPUS_DIR / name).read_text())
    sources = [PATH_CELL, setup, train]
    if with_stats:
        sources.append(STATS_CELL)
    sources.append(train)
    if with_stats:
        sources.append(STATS_CELL)
    sources.append(rest)
    return code_notebook(sources)


def code_notebook(sources) -> nbformat.NotebookNode:
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])


def run_notebook(nb: nbformat.NotebookNode, kernel: str) -> nbformat.NotebookNode:
    """Runs every cell in `kernel`, in the corpus directory (its sibling import)."""
    NotebookClient(nb, kernel_name=kernel, timeout=300, allow_errors=False,
                   resources={"metadata": {"path": str(CORPUS_DIR)}}).execute()
    return nb


def execute(name: str, kernel: str) -> nbformat.NotebookNode:
    return run_notebook(notebook(name, with_stats=kernel == "terra"), kernel)


def comparable(outputs: list) -> list:
    """Outputs without execution counts and metadata (they may differ between kernels)."""
    result = []
    for output in outputs:
        kind = output["output_type"]
        if output.get("metadata", {}).get("terra", {}).get("view") == "speedup":
            continue  # the live speedup chart the Terra kernel adds below loop cells
        if kind == "stream":
            result.append((kind, output["name"], _without_log_stamps(output["text"])))
        elif kind in ("execute_result", "display_data"):
            result.append((kind, json.dumps(output["data"], sort_keys=True)))
        else:
            result.append((kind, output.get("ename"), output.get("evalue")))
    return _merge_streams(result)


# torch's C++ log lines (glog style) start with a date, a time and the process id:
# `W1205 15:11:28.781000 9682 torch/utils/cpp_extension.py:140] ...`.
_LOG_STAMP = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ ", re.MULTILINE)


def _without_log_stamps(text: str) -> str:
    """The text with the date, time and pid of log lines left out (the message stays)."""
    return _LOG_STAMP.sub(r"\1 ", text)


def _merge_streams(items: list) -> list:
    """Adjacent stream chunks of the same name joined (kernels flush at different times)."""
    merged = []
    for item in items:
        same_stream = merged and merged[-1][0] == "stream" and merged[-1][1] == item[1]
        if item[0] == "stream" and same_stream:
            merged[-1] = ("stream", item[1], merged[-1][2] + item[2])
        else:
            merged.append(item)
    return merged


def loop_regions(cell) -> list:
    """The regions of the cells' loops (keys `cell-…`), in the order they were made."""
    text = "".join(o.get("text", "") for o in cell["outputs"] if o["output_type"] == "stream")
    line = next(l for l in text.splitlines() if l.startswith("TERRA-STATS "))
    return [r for r in json.loads(line[len("TERRA-STATS "):])["regions"]
            if r["key"].startswith("cell-")]


def stats_of(cell) -> dict:
    """Traced and co-executed iterations of the regions of the cells' loops, summed."""
    regions = loop_regions(cell)
    return {key: sum(r[key] for r in regions)
            for key in ("iterations_traced", "iterations_coexecuted")}


@pytest.fixture(scope="module")
def executed(jupyter_env):
    """Every corpus notebook run under both kernels, two kernels at a time."""
    jobs = [(name, kernel) for name in NOTEBOOK_PROGRAMS for kernel in ("python3", "terra")]

    def run(job):
        try:
            return execute(*job)
        except Exception as error:  # reported by the test of that program
            return error

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(jobs, pool.map(run, jobs)))


def test_terra_kernelspec_installed(jupyter_env):
    from jupyter_client.kernelspec import KernelSpecManager

    assert "terra" in KernelSpecManager().find_kernel_specs(), "run `make install` first"


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("name", NOTEBOOK_PROGRAMS)
def test_corpus_notebook(name, executed):
    eager, terra = executed[(name, "python3")], executed[(name, "terra")]
    assert not isinstance(eager, Exception), f"ipykernel run failed: {eager}"
    assert not isinstance(terra, Exception), f"terra kernel run failed: {terra}"
    terra_cells = [c for c in terra.cells if c.source != STATS_CELL]
    assert len(terra_cells) == len(eager.cells)
    for index, (a, b) in enumerate(zip(eager.cells, terra_cells)):
        assert comparable(b.outputs) == comparable(a.outputs), f"cell {index} differs"
    first, second = (stats_of(c) for c in terra.cells if c.source == STATS_CELL)
    assert first["iterations_coexecuted"] > 0, f"no co-execution of the training loop: {first}"
    traced_first = first["iterations_traced"]
    traced_second = second["iterations_traced"] - traced_first
    coexec_second = second["iterations_coexecuted"] - first["iterations_coexecuted"]
    assert coexec_second > 0, f"no co-execution in the second run: {second}"
    assert traced_second < traced_first, (
        f"the re-run traced {traced_second} iterations, the first run {traced_first}: "
        "the graph did not carry over")


# DESIGN §6 "state dicts saved and loaded between cells": c27's loop lives in a function,
# so its notebook form is written out here, one step per cell. The first model trains,
# its state dicts go to a file, it trains on (changing the live objects, not the file),
# and fresh objects loaded from the file train in a cell of their own.
STATE_DICT_CELLS = (
    PATH_CELL,
    "import os, tempfile\nimport torch\nfrom corpus_common import checksum\n"
    "def make():\n"
    "    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))\n"
    "    return model, torch.optim.Adam(model.parameters(), lr=1e-2)\n"
    "torch.manual_seed(27)\nx = torch.randn(24, 4)\n"
    "y = torch.stack([x[:, 0] - x[:, 1], x[:, 2] * 0.5], 1)\nmodel, opt = make()",
    "for step in range(12):\n    opt.zero_grad()\n    loss = (model(x) - y).pow(2).mean()\n"
    "    loss.backward()\n    opt.step()\n    print('before', step, loss.item())",
    "folder = tempfile.mkdtemp()\npath = os.path.join(folder, 'ckpt.pt')\n"
    "torch.save({'model': model.state_dict(), 'opt': opt.state_dict()}, path)",
    "for step in range(5):\n    opt.zero_grad()\n    loss = (model(x) - y).pow(2).mean()\n"
    "    loss.backward()\n    opt.step()\n    print('diverted', step, loss.item())",
    "state = torch.load(path)\nmodel2, opt2 = make()\nmodel2.load_state_dict(state['model'])\n"
    "opt2.load_state_dict(state['opt'])\nos.remove(path); os.rmdir(folder)",
    "for step in range(12):\n    opt2.zero_grad()\n    loss = (model2(x) - y).pow(2).mean()\n"
    "    loss.backward()\n    opt2.step()\n    print('after', step, loss.item())",
    "checksum(model2)\nchecksum(model)",
)


def execute_cells(sources, kernel: str) -> nbformat.NotebookNode:
    stats = [STATS_CELL] if kernel == "terra" else []
    return run_notebook(code_notebook([*sources, *stats]), kernel)


@pytest.mark.timeout(600)
def test_state_dicts_saved_and_loaded_between_cells(jupyter_env):
    with ThreadPoolExecutor(max_workers=2) as pool:
        eager, terra = pool.map(lambda kernel: execute_cells(STATE_DICT_CELLS, kernel),
                                ("python3", "terra"))
    assert len(terra.cells) == len(eager.cells) + 1
    for index, (a, b) in enumerate(zip(eager.cells, terra.cells)):
        assert comparable(b.outputs) == comparable(a.outputs), f"cell {index} differs"
    assert "after 11" in "".join(o.get("text", "") for o in eager.cells[6].outputs)
    # Three loop cells of 12, 5 and 12 iterations, each a region. The loaded objects are
    # new state: the third cell's loop traces its own first iterations, then co-executes.
    loops = loop_regions(terra.cells[-1])
    assert [r["iterations_traced"] + r["iterations_coexecuted"] for r in loops] == [12, 5, 12]
    coexecuted = [r["iterations_coexecuted"] for r in loops]
    assert coexecuted[0] >= 6 and coexecuted[1] >= 1 and coexecuted[2] >= 6, loops
    # Their backward passes are replayed from a recording after the first co-executed one.
    replayed = [r["backwards_replayed"] for r in loops]
    assert replayed[0] >= coexecuted[0] - 1 and replayed[2] >= coexecuted[2] - 1, loops
