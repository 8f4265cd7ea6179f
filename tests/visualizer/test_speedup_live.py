"""The live speedup view: iteration records (terra.iterations) and the chart the Terra
kernel shows below a cell whose loop runs as a region (terra/ipython.py CellSpeedup).

Every test compares with eager PyTorch computed here and with the engine's stats, so a
silent fallback to eager (no co-executed iteration) fails.
"""
import contextlib
import io
import json
import re
import textwrap
import warnings

import nbformat
import pytest
import torch
from nbclient import NotebookClient

import terra
from terra import loops, regions

SPEEDUP_META = {"terra": {"view": "speedup"}}

SETUP = """\
import time
import torch
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.05)
x = torch.randn(64, 16)
y = torch.randn(64, 1)
"""

# 60 MLP steps; the sleep (plain Python) makes the loop last long enough (> 0.6 s) for
# the view to send throttled updates while it runs, not only the final one.
TRAIN = """\
for step in range(60):
    opt.zero_grad()
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    opt.step()
    time.sleep(0.01)
print(f"{loss.item():.6f}")
"""

STATS = "import json, terra\nprint(json.dumps(terra.stats()))"


def eager_loss() -> str:
    """The loss TRAIN prints, computed eagerly in this process."""
    namespace = {}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(SETUP, namespace)
        exec(TRAIN.replace("time.sleep(0.01)", "pass"), namespace)
    return f"{namespace['loss'].item():.6f}"


def counts_in(text: str) -> tuple[int, int]:
    """(traced, co-executed) from the view's text/plain."""
    match = re.search(r"\((\d+) traced, (\d+) co-executed\)", text)
    assert match, f"no iteration counts in {text!r}"
    return int(match.group(1)), int(match.group(2))


def loop_region(stats: dict) -> dict:
    """The one region of a loop (cell runs have keys `cellrun-...`) that ran TRAIN."""
    loops_ = [r for r in stats["regions"] if not r["key"].startswith("cellrun-")
              and r["iterations_traced"] + r["iterations_coexecuted"] > 0]
    assert len(loops_) == 1, stats["regions"]
    return loops_[0]


def is_speedup(output) -> bool:
    return output.get("metadata", {}).get("terra") == SPEEDUP_META["terra"]


# ----- the listener API, in process --------------------------------------------------


def _region_counters(name: str) -> tuple[int, int, int]:
    for entry in terra.stats()["regions"]:
        if entry["name"] == name:
            return (entry["iterations_traced"], entry["iterations_coexecuted"],
                    entry["fallbacks"])
    return (0, 0, 0)


def _mlp_steps(n: int, region: str | None):
    """n SGD steps of a small MLP, each in `terra.iteration(region)` unless region is None."""
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = torch.randn(32, 8)
    target = torch.randn(32, 1)
    for _ in range(n):
        if region is None:
            _step(model, opt, data, target)
        else:
            with terra.iteration(region):
                _step(model, opt, data, target)
    terra.sync()
    return [p.detach().clone() for p in model.parameters()]


def _step(model, opt, data, target):
    opt.zero_grad()
    torch.nn.functional.mse_loss(model(data), target).backward()
    opt.step()


def test_an_iteration_without_tensor_ops_takes_its_own_number():
    """Every finished iteration gets the next number, one that ran no tensor op too (the
    engine counts it apart: iterations_without_ops)."""
    region = "test_speedup_live.without_ops"
    records = []
    terra.add_iteration_listener(records.append)
    try:
        torch.manual_seed(2)
        w = torch.randn(4, 4)
        for step in range(8):
            with terra.iteration(region):
                if step != 5:
                    w = torch.tanh(w @ w)
        terra.sync()
    finally:
        terra.remove_iteration_listener(records.append)
    assert [r["iteration"] for r in records] == list(range(8))
    assert records[5]["phase"] == "traced"
    stats = next(r for r in terra.stats()["regions"] if r["name"] == region)
    assert stats["iterations_without_ops"] == 1


def test_listener_gets_one_record_per_iteration_matching_the_stats():
    region = "test_speedup_live.explicit"
    records = []
    before = _region_counters(region)
    terra.add_iteration_listener(records.append)
    terra.add_iteration_listener(records.append)  # registering twice is a no-op
    try:
        params = _mlp_steps(12, region)
    finally:
        terra.remove_iteration_listener(records.append)
    after = _region_counters(region)
    expected = _mlp_steps(12, None)
    assert all(torch.equal(a, b) for a, b in zip(params, expected))

    assert len(records) == 12
    assert {r["region"] for r in records} == {region}
    assert {r["kind"] for r in records} == {"explicit"}
    assert [r["iteration"] for r in records] == list(range(before[0] + before[1],
                                                            before[0] + before[1] + 12))
    traced = sum(r["phase"] == "traced" for r in records)
    coexecuted = sum(r["phase"] == "coexecuted" for r in records)
    assert (traced, coexecuted) == (after[0] - before[0], after[1] - before[1])
    assert coexecuted > 0 and traced > 0
    assert sum(r["fallback"] for r in records) == after[2] - before[2]
    assert all(r["seconds"] >= 0 for r in records)

    _mlp_steps(3, region)  # removed: no more records
    assert len(records) == 12


def test_marked_loops_publish_records_and_a_failing_listener_only_warns():
    """The path the kernel uses: a loop marked by terra.loops, run under regions.POLICY."""
    source = textwrap.dedent("""\
        torch.manual_seed(2)
        w = torch.randn(8, 8, requires_grad=True)
        for i in range(10):
            loss = (torch.tanh(w @ w) ** 2).sum()
            loss.backward()
            with torch.no_grad():
                w -= 0.01 * w.grad
                w.grad = None
        """)
    regions.install()
    code = loops.compile_marked(source, "<speedup-live-test>", key_prefix="speedup-live-test")
    records = []

    def failing(record):
        raise RuntimeError("broken view")

    terra.add_iteration_listener(records.append)
    terra.add_iteration_listener(failing)
    try:
        namespace = {"torch": torch}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            exec(code, namespace)
        terra.sync()
    finally:
        terra.remove_iteration_listener(records.append)
        terra.remove_iteration_listener(failing)
    eager = {"torch": torch}
    exec(source, eager)
    assert torch.equal(namespace["w"], eager["w"])

    assert len(records) == 10 and {r["kind"] for r in records} == {"loop"}
    assert any("broken view" in str(w.message) for w in caught)
    (entry,) = [r for r in terra.stats()["regions"] if r["id"] == records[0]["region_id"]]
    assert sum(r["phase"] == "coexecuted" for r in records) == entry["iterations_coexecuted"]
    assert sum(r["phase"] == "traced" for r in records) == entry["iterations_traced"]
    assert entry["iterations_coexecuted"] > 0


# ----- the view under the Terra kernel --------------------------------------------------


def _notebook(*sources) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    return nb


@pytest.mark.timeout(240)
def test_kernel_shows_one_live_speedup_view_below_a_training_cell(kernel_name, jupyter_env):
    if kernel_name != "terra":
        pytest.skip("the speedup view is a feature of the Terra kernel")
    no_loop = "z = torch.ones(3) * 2\nprint(z.sum().item())"
    switch_off = "import os\nos.environ['TERRA_SPEEDUP_VIEW'] = '0'"  # read at cell start
    loop_while_off = "for k in range(5):\n    z = z * 2\nprint(z.sum().item())"
    python_loop = "for i in range(4):\n    print(i)"  # no tensor op: no chart
    own_view = ("from terra.widgets import SpeedupView\nmine = SpeedupView().display()\n"
                "for k in range(6):\n    z = z + 1")  # the cell's own chart: no second one
    nb = _notebook(SETUP, TRAIN, STATS, no_loop, python_loop, own_view, loop_while_off,
                   switch_off, loop_while_off)
    NotebookClient(nb, kernel_name="terra", timeout=180).execute()
    (setup, train, stats_cell, no_loop_cell, python_loop_cell, own_view_cell, on_cell,
     switch_cell, off_cell) = nb.cells

    views = [o for o in train.outputs if is_speedup(o)]
    assert len(views) == 1, train.outputs
    (view,) = views
    assert view.output_type == "display_data"
    assert "<svg" in view.data["text/html"]
    streams = "".join(o.text for o in train.outputs if o.output_type == "stream")
    assert streams.strip() == eager_loss()  # the view never touches stdout

    stats = json.loads(stats_cell.outputs[0].text)
    region = loop_region(stats)
    traced, coexecuted = counts_in(view.data["text/plain"])
    assert (traced, coexecuted) == (region["iterations_traced"],
                                    region["iterations_coexecuted"])
    assert traced + coexecuted == 60 and traced > 0 and coexecuted > 0
    assert 'class="coexecuted"' in view.data["text/html"]

    assert len([o for o in on_cell.outputs if is_speedup(o)]) == 1  # the knob's default
    eager_z = ((torch.ones(3) * 2 + 6) * 2**5).sum().item()
    assert off_cell.outputs[0].text.strip() == str(eager_z * 2**5)  # the loop ran again
    assert python_loop_cell.outputs[0].text == "".join(f"{i}\n" for i in range(4))
    assert ['terra-speedup"' in o.data.get("text/html", "") for o in own_view_cell.outputs
            ] == [True]
    for cell in (setup, stats_cell, no_loop_cell, python_loop_cell, own_view_cell,
                 switch_cell, off_cell):
        assert not [o for o in cell.outputs if is_speedup(o)], cell.source


@pytest.mark.timeout(240)
def test_kernel_updates_the_view_in_place_while_the_loop_runs(kernel_name, jupyter_env):
    if kernel_name != "terra":
        pytest.skip("the speedup view is a feature of the Terra kernel")
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="terra", startup_timeout=60)
    try:
        _run(kc, SETUP)
        messages = _run(kc, TRAIN)
        stats = json.loads(_stdout(_run(kc, STATS)))
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)

    displays = [m for m in messages if m["msg_type"] == "display_data"]
    updates = [m for m in messages if m["msg_type"] == "update_display_data"]
    assert len(displays) == 1 and displays[0]["content"]["metadata"] == SPEEDUP_META
    display_id = displays[0]["content"]["transient"]["display_id"]
    assert len(updates) >= 2  # throttled updates during the loop, then the final one
    assert {u["content"]["transient"]["display_id"] for u in updates} == {display_id}
    assert all(u["content"]["metadata"] == SPEEDUP_META for u in updates)
    assert _stdout(messages).strip() == eager_loss()

    first = counts_in(updates[0]["content"]["data"]["text/plain"])
    last = counts_in(updates[-1]["content"]["data"]["text/plain"])
    assert sum(first) < 60 == sum(last)
    region = loop_region(stats)
    assert last == (region["iterations_traced"], region["iterations_coexecuted"])
    assert last[1] > 0


def _run(kc, code: str, timeout: float = 120) -> list:
    """Executes `code`; the iopub messages it caused (status and input left out)."""
    msg_id = kc.execute(code)
    messages = []
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
        if msg["msg_type"] not in ("status", "execute_input"):
            messages.append(msg)
    reply = kc.get_shell_msg(timeout=timeout)
    assert reply["content"]["status"] == "ok", reply["content"]
    assert not [m for m in messages if m["msg_type"] == "error"], messages
    return messages


def _stdout(messages: list) -> str:
    return "".join(m["content"]["text"] for m in messages
                   if m["msg_type"] == "stream" and m["content"]["name"] == "stdout")


# ----- %terra graph REGION ------------------------------------------------------------


def test_terra_graph_magic_passes_the_region_to_show_graph(monkeypatch):
    from IPython.core.interactiveshell import InteractiveShell

    from terra import ipython

    calls = []
    monkeypatch.setattr(terra, "show_graph", lambda region=None, **kw: calls.append(region))
    shell = InteractiveShell.instance()
    try:
        ipython.load_ipython_extension(shell)
        for line in ("%terra graph", "%terra graph 3", "%terra graph train.py:42",
                     "%terra graph cell ab12cd"):
            assert shell.run_cell(line).success
    finally:
        ipython.unload_ipython_extension(shell)
        InteractiveShell.clear_instance()
    assert calls == [None, 3, "train.py:42", "cell ab12cd"]
