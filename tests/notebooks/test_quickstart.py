"""notebooks/quickstart.ipynb runs headless under the kernel under test and prints
exactly what it prints under ipykernel.

Three executions, all in this module: the eager reference under ipykernel (nbclient),
the kernel under test through nbclient, and the kernel under test through the
`jupyter nbconvert --execute --to html` command that `make demo` runs (its HTML report
is kept in artifacts/notebooks/). Compared: stdout and stderr of every cell but the one
tagged `terra-stats` (whose text legitimately differs between kernels). That cell's
output, Terra's stats when the engine is present, is saved as an artifact, not judged:
the engine's own tests judge the engine.
"""
import datetime
import html.parser
import json
import pathlib
import subprocess

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = pathlib.Path(__file__).resolve().parents[2] / "notebooks" / "quickstart.ipynb"
EAGER_REFERENCE_KERNEL = "python3"
STATS_TAG = "terra-stats"
CELL_TIMEOUT_S = 180
# Lines the training cells must print; guards against comparing two empty runs.
EXPECTED_LOSS_REPORTS = 8


def execute_with_nbclient(kernel, workdir):
    """Runs the quickstart under `kernel` with nbclient; returns the executed notebook."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook,
        kernel_name=kernel,
        timeout=CELL_TIMEOUT_S,
        startup_timeout=120,
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute()
    return notebook


def compared_cells(notebook):
    """The code cells whose printed output must not depend on the kernel."""
    return [
        cell
        for cell in notebook.cells
        if cell.cell_type == "code" and STATS_TAG not in cell.metadata.get("tags", [])
    ]


def streams_by_cell(notebook):
    """{cell id: {"stdout": text, "stderr": text}} for the compared cells.

    stderr is compared too: a kernel must not add its own messages to a user's cell."""
    return {
        cell.id: {
            name: "".join(
                out.text for out in cell.outputs if out.output_type == "stream" and out.name == name
            )
            for name in ("stdout", "stderr")
        }
        for cell in compared_cells(notebook)
    }


def assert_no_errors(notebook):
    for cell in notebook.cells:
        for out in cell.get("outputs", []):
            assert out.output_type != "error", f"cell {cell.id} raised {out.ename}: {out.evalue}"


def png_outputs(notebook):
    return [
        out
        for cell in notebook.cells
        for out in cell.get("outputs", [])
        if out.output_type in ("display_data", "execute_result")
        and "image/png" in out.get("data", {})
    ]


def stats_text(notebook):
    (cell,) = [c for c in notebook.cells if STATS_TAG in c.metadata.get("tags", [])]
    return "".join(out.get("text", "") for out in cell.outputs if out.output_type == "stream")


class StreamsFromNbconvertHtml(html.parser.HTMLParser):
    """Collects, per notebook cell, the text of the stream blocks nbconvert's lab
    template renders: `<div class="jp-RenderedText jp-OutputArea-output"
    data-mime-type="text/plain"><pre>…</pre></div>` for stdout, the same with
    `application/vnd.jupyter.stderr` for stderr. Execute results carry an extra class
    and are left out."""

    STREAM_BY_MIME = {"text/plain": "stdout", "application/vnd.jupyter.stderr": "stderr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.streams = {}
        self.png_count = 0
        self._cell = None
        self._stream = None
        self._in_pre = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        if tag == "div" and "jp-Cell" in classes:
            self._cell = (attrs.get("id") or "").removeprefix("cell-id=")
            self.streams.setdefault(self._cell, {"stdout": "", "stderr": ""})
        elif tag == "div" and classes == ["jp-RenderedText", "jp-OutputArea-output"]:
            self._stream = self.STREAM_BY_MIME.get(attrs.get("data-mime-type"))
        elif tag == "pre" and self._stream:
            self._in_pre = True
        elif tag == "img" and (attrs.get("src") or "").startswith("data:image/png;base64,"):
            self.png_count += 1

    def handle_endtag(self, tag):
        if tag == "pre" and self._in_pre:
            self._in_pre = False
            self._stream = None

    def handle_data(self, data):
        if self._in_pre and self._cell is not None:
            self.streams[self._cell][self._stream] += data


@pytest.fixture(scope="module")
def eager_reference(jupyter_env, tmp_path_factory, notebook_artifacts):
    """The quickstart executed under ipykernel: the reference for printed values."""
    notebook = execute_with_nbclient(EAGER_REFERENCE_KERNEL, tmp_path_factory.mktemp("eager"))
    saved = notebook_artifacts / f"quickstart-{EAGER_REFERENCE_KERNEL}-nbclient.ipynb"
    nbformat.write(notebook, saved)
    record_stats(notebook, EAGER_REFERENCE_KERNEL, "nbclient", notebook_artifacts)
    assert_no_errors(notebook)
    printed = streams_by_cell(notebook)
    loss_reports = "".join(cell["stdout"] for cell in printed.values()).count(" loss ")
    assert loss_reports >= EXPECTED_LOSS_REPORTS, printed
    return notebook


@pytest.fixture(scope="module")
def notebook_artifacts(artifacts_dir):
    path = artifacts_dir / "notebooks"
    path.mkdir(exist_ok=True)
    return path


def cell_seconds(notebook):
    """{cell id: seconds from execute_input to execute_reply}, from nbclient's timing."""
    def instant(stamp):
        return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))

    seconds = {}
    for cell in notebook.cells:
        timing = cell.metadata.get("execution", {})
        if "iopub.execute_input" in timing and "shell.execute_reply" in timing:
            start, end = timing["iopub.execute_input"], timing["shell.execute_reply"]
            seconds[cell.id] = round((instant(end) - instant(start)).total_seconds(), 3)
    return seconds


def record_stats(notebook, kernel, runner, notebook_artifacts):
    """Saves the `terra-stats` cell's text (Terra's stats, or why there are none) and
    the cells' run times (informative only: nothing here judges speed)."""
    text = stats_text(notebook)
    try:  # the cell prints a summary line, then the totals as a JSON object
        stats, _ = json.JSONDecoder().raw_decode(text[text.index("{"):])
    except ValueError:
        stats = None
    record = {
        "kernel": kernel,
        "runner": runner,
        "stats": stats,
        "text": text,
        "cell_seconds": cell_seconds(notebook),
    }
    (notebook_artifacts / f"quickstart-{kernel}-{runner}-stats.json").write_text(
        json.dumps(record, indent=1)
    )


@pytest.mark.timeout(300)
def test_nbclient_run_prints_what_ipykernel_prints(
    eager_reference, kernel_name, jupyter_env, tmp_path, notebook_artifacts
):
    notebook = execute_with_nbclient(kernel_name, tmp_path)
    nbformat.write(notebook, notebook_artifacts / f"quickstart-{kernel_name}-nbclient.ipynb")
    record_stats(notebook, kernel_name, "nbclient", notebook_artifacts)

    assert_no_errors(notebook)
    assert streams_by_cell(notebook) == streams_by_cell(eager_reference)
    assert len(png_outputs(notebook)) == 1, "the loss-curve cell must show one inline PNG"


@pytest.mark.timeout(300)
def test_nbconvert_html_report_prints_what_ipykernel_prints(
    eager_reference, kernel_name, jupyter_env, venv_bin, tmp_path, notebook_artifacts
):
    """The exact command `make demo` runs, with the output in artifacts/notebooks/."""
    report_name = f"quickstart-{kernel_name}"
    completed = subprocess.run(
        [
            str(venv_bin / "jupyter"), "nbconvert", "--to", "html", "--execute",
            f"--ExecutePreprocessor.kernel_name={kernel_name}",
            f"--ExecutePreprocessor.timeout={CELL_TIMEOUT_S}",
            "--output-dir", str(notebook_artifacts), "--output", report_name,
            str(NOTEBOOK),
        ],
        cwd=tmp_path, env=jupyter_env, capture_output=True, text=True, timeout=280,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]

    report = StreamsFromNbconvertHtml()
    report.feed((notebook_artifacts / f"{report_name}.html").read_text())
    expected = streams_by_cell(eager_reference)
    assert {cell: report.streams.get(cell) for cell in expected} == expected
    assert report.png_count == 1, "the loss-curve cell must show one inline PNG"
