"""The engine's differential corpus through the Terra kernel (nbclient).

A representative subset of tests/coexec/corpus (eleven programs whose training loop is
a top-level statement, so the script splits naturally into notebook cells: set-up,
training loop, checksum; together they cover backward, Adam, numpy/random on
fetched values, `if t.item()` branches, Dropout, BatchNorm, hooks, a caught user
exception, print(tensor), two optimizers, a caught KeyboardInterrupt, and kernel
errors caught by the program). The
programs whose loop lives inside a function run under the script tests only.

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
from concurrent.futures import ThreadPoolExecutor

import nbformat
import pytest
from nbclient import NotebookClient

CORPUS_DIR = pathlib.Path(__file__).resolve().parents[1] / "coexec" / "corpus"
SUBSET = (
    "c01_mlp_sgd.py", "c05_numpy_random_math.py", "c06_item_branch.py",
    "c14_dropout_train_eval.py", "c15_batchnorm.py", "c18_hooks.py", "c22_user_exception.py",
    "c24_print_tensor.py", "c26_gan.py", "c28_keyboard_interrupt.py", "c34_kernel_errors.py",
    "c37_other_threads.py", "c38_exception_in_backward.py",
)
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
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])


def execute(name: str, kernel: str) -> nbformat.NotebookNode:
    nb = notebook(name, with_stats=kernel == "terra")
    client = NotebookClient(nb, kernel_name=kernel, timeout=300, allow_errors=False,
                            resources={"metadata": {"path": str(CORPUS_DIR)}})
    client.execute()
    return nb


def comparable(outputs: list) -> list:
    """Outputs without execution counts and metadata (they may differ between kernels)."""
    result = []
    for output in outputs:
        kind = output["output_type"]
        if output.get("metadata", {}).get("terra", {}).get("view") == "speedup":
            continue  # the live speedup chart the Terra kernel adds below loop cells
        if kind == "stream":
            result.append((kind, output["name"], output["text"]))
        elif kind in ("execute_result", "display_data"):
            result.append((kind, json.dumps(output["data"], sort_keys=True)))
        else:
            result.append((kind, output.get("ename"), output.get("evalue")))
    return _merge_streams(result)


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


def stats_of(cell) -> dict:
    """Traced and co-executed iterations of the regions of the cells' loops (keys `cell-…`)."""
    text = "".join(o.get("text", "") for o in cell["outputs"] if o["output_type"] == "stream")
    line = next(l for l in text.splitlines() if l.startswith("TERRA-STATS "))
    regions = [r for r in json.loads(line[len("TERRA-STATS "):])["regions"]
               if r["key"].startswith("cell-")]
    return {key: sum(r[key] for r in regions)
            for key in ("iterations_traced", "iterations_coexecuted")}


@pytest.fixture(scope="module")
def executed(jupyter_env):
    """Every subset notebook run under both kernels, two kernels at a time."""
    jobs = [(name, kernel) for name in SUBSET for kernel in ("python3", "terra")]

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
@pytest.mark.parametrize("name", SUBSET)
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
