"""The graph widget and the speedup view in a real JupyterLab 4 + headless Chromium.

A notebook under the kernel under test (TERRA_TEST_KERNEL, default `terra`) trains a
small residual MLP; `terra.show_graph()` then shows the region's real graph from the
engine. The test expands a group by clicking it, finds a node by op name with the
search box, checks the details panel's source line against the graph JSON the kernel
printed, shows a speedup chart and three bad inputs, saves the notebook and exports
it with nbconvert: the HTML must contain the static SVG graph and chart.
Screenshots and the HTML go to artifacts/visualizer/.

Fixtures: tests/browser/jupyterlab_fixtures.py.
"""
import json
import re

import pytest

MODEL_CODE = """import torch
from torch import nn
torch.manual_seed(0)
class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 16)
    def forward(self, x):
        return x + torch.relu(self.fc(x))
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(8, 16)
        self.blocks = nn.Sequential(*[Block() for _ in range(3)])
        self.head = nn.Linear(16, 1)
    def forward(self, x):
        return self.head(self.blocks(self.embed(x)))
model = Net()
opt = torch.optim.SGD(model.parameters(), lr=0.1)
x = torch.randn(32, 8)
y = torch.randn(32, 1)
"""

TRAIN_CELL = MODEL_CODE + """for step in range(8):
    loss = nn.functional.mse_loss(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    if step % 4 == 0:
        print("terra-loss", step, round(loss.item(), 5))
"""

GRAPH_CELL = """import json, terra
from terra.widgets import GraphWidget
widget = GraphWidget()
widget.display()
g = terra.graph(widget.region)
hit = next(n for n in g["nodes"] if "relu" in n["op"].lower() or "relu" in n["label"].lower())
print("terra-expect", json.dumps({"nodes": len(g["nodes"]), "op": hit["op"],
      "source": f"{hit['source']['file']}:{hit['source']['line']}",
      "namespaces": sorted({n["namespace"] for n in g["nodes"]})}))
"""

SPEEDUP_CELL = """import time
from terra.widgets import SpeedupView
view = SpeedupView(region="demo").display()
for i in range(24):
    start = time.perf_counter()
    loss = nn.functional.mse_loss(model(x), y)
    view.add({"region": "demo", "iteration": i, "seconds": time.perf_counter() - start,
              "phase": "traced" if i < 2 else "coexecuted", "fallback": i == 9})
view.flush()
"""

BAD_CELLS = {
    "missing-region": ('terra.show_graph(region="no-such-region")',
                       "no region named 'no-such-region'"),
    "old-version": ('terra.show_graph(graph={"format": "terra.graph", "version": 0, "nodes": []})',
                    "version 0 is not supported"),
    "empty": ('terra.show_graph(graph={"format": "terra.graph", "version": 1, "nodes": []})',
              "graph is empty"),
}


def eager_losses():
    """What TRAIN_CELL prints, computed here with eager PyTorch."""
    scope = {}
    exec(MODEL_CODE, scope)  # noqa: S102 (the test's own code)
    nn, model, opt, x, y = (scope[k] for k in ("nn", "model", "opt", "x", "y"))
    lines = []
    for step in range(8):
        loss = nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 4 == 0:
            lines.append(f"terra-loss {step} {round(loss.item(), 5)}")
    return lines


def last_output(lab):
    """Output area of the cell run last (run_cell appends an empty cell after it)."""
    cells = lab.notebook_panel().locator(".jp-Notebook .jp-CodeCell")
    return cells.nth(cells.count() - 2).locator(".jp-OutputArea")


def save_notebook(lab):
    """Saves with Ctrl+S, accepting JupyterLab's first-save rename dialog if it shows."""
    lab.page.keyboard.press("Control+s")
    dialog = lab.page.locator(".jp-Dialog")
    try:
        dialog.wait_for(state="visible", timeout=3000)
        lab.page.locator(".jp-Dialog .jp-mod-accept").click()
    except Exception:  # no dialog: saved directly
        pass
    lab.page.wait_for_timeout(1500)


@pytest.mark.timeout(600)
def test_graph_widget_and_speedup_view_in_jupyterlab(lab_page, kernel_display_name,
                                                     jupyterlab_server, artifacts_dir):
    out_dir = artifacts_dir / "visualizer"
    out_dir.mkdir(exist_ok=True)
    page = lab_page.page
    page_errors = []
    page.on("pageerror", lambda err: page_errors.append(str(err)))
    lab_page.new_notebook(kernel_display_name)

    # 1. A real training loop; its printed losses equal eager PyTorch's.
    printed = lab_page.run_cell(TRAIN_CELL)
    assert [ln for ln in printed.splitlines() if ln.startswith("terra-loss")] == eager_losses()

    # 2. The widget shows the region's graph from the engine.
    text = lab_page.run_cell(GRAPH_CELL)
    expect = json.loads(re.search(r"terra-expect (.*)", text).group(1))
    assert expect["nodes"] > 0
    widget = last_output(lab_page).locator(".terra-graph")
    widget.locator("g.terra-node").first.wait_for(state="visible")
    assert "Terra graph" in widget.locator(".terra-title").inner_text()
    assert widget.locator(".terra-error").count() == 0

    # 3. Expanding a collapsed module group on click asks the kernel for a new layout.
    groups = sorted({ns.split("/")[1] for ns in expect["namespaces"] if ns.count("/") >= 1})
    assert "blocks" in groups, expect["namespaces"]
    group = widget.locator("g.terra-group", has_text="blocks")
    group.wait_for(state="visible")
    widget.screenshot(path=str(out_dir / "graph-initial.png"))
    group.click()
    cluster = widget.locator('g.terra-cluster[data-path$="/blocks"]')
    cluster.wait_for(state="visible")
    blocks = sorted({ns.split("/")[2] for ns in expect["namespaces"]
                     if ns.count("/") >= 2 and ns.split("/")[1] == "blocks"})
    fold = widget.locator("g.terra-fold")
    fold.first.wait_for(state="visible")  # identical Block modules folded as one "×N"
    assert f"×{len(blocks)}" in fold.first.text_content()
    widget.screenshot(path=str(out_dir / "graph-group-expanded.png"))

    # 4. Search by op name: the node is revealed, highlighted, centred; details show source.
    search = widget.locator("input.terra-search")
    search.fill("relu")
    search.press("Enter")
    details = widget.locator(".terra-details")
    details.wait_for(state="visible")
    assert widget.locator(".terra-detail-source").inner_text() == expect["source"]
    assert details.locator(".terra-detail-op").inner_text() == expect["op"]
    assert widget.locator("g.terra-node.terra-selected").count() == 1
    assert "match 1 of" in widget.locator(".terra-status").inner_text()

    # A click on another op node opens its details (the tooltip names op and source).
    other_id = widget.locator("g.terra-op:not(.terra-selected)").first.get_attribute("data-id")
    other = widget.locator(f'g.terra-op[data-id="{other_id}"]')
    title = other.locator("title").text_content()
    other.click()
    page.wait_for_timeout(200)
    assert title.startswith(details.locator(".terra-detail-op").inner_text() + " @ ")
    assert title.endswith(widget.locator(".terra-detail-source").inner_text())
    assert "terra-selected" in (other.get_attribute("class") or "")

    # 5. Pan and zoom change the drawing's transform.
    layer = widget.locator("g.terra-layer")
    before = layer.get_attribute("transform")
    widget.locator("svg.terra-canvas").hover()
    page.mouse.wheel(0, -300)
    page.wait_for_timeout(300)
    assert layer.get_attribute("transform") != before
    widget.screenshot(path=str(out_dir / "graph-search-details.png"))

    # 6. The speedup chart below a loop, updated in place.
    lab_page.run_cell(SPEEDUP_CELL)
    chart = last_output(lab_page).locator(".terra-speedup")
    chart.wait_for(state="visible")
    assert "24 iterations" in chart.inner_text() and "speedup" in chart.inner_text()
    assert chart.locator("svg circle.coexecuted").count() == 21
    assert chart.locator("svg .fallback").count() == 1
    chart.screenshot(path=str(out_dir / "speedup-chart.png"))

    # 7. terra.show_graph() displays one widget (also as the last line of a cell).
    lab_page.run_cell("terra.show_graph()")
    shown = last_output(lab_page).locator(".terra-graph")
    shown.locator("g.terra-node").first.wait_for(state="visible")
    assert shown.count() == 1

    # 8. Bad input: a clear message in the output area, never a JavaScript error.
    for name, (code, message) in BAD_CELLS.items():
        lab_page.run_cell(code)
        error = last_output(lab_page).locator(".terra-error")
        error.first.wait_for(state="visible")
        assert error.count() == 1, name
        assert message in error.first.inner_text(), name
    lab_page.page.screenshot(path=str(out_dir / "bad-input.png"), full_page=True)
    assert not [e for e in page_errors if "terra" in e.lower() or "graph" in e.lower()], page_errors

    # 9. An nbconvert HTML export of the saved notebook shows the static graph and chart.
    save_notebook(lab_page)
    saved = sorted(jupyterlab_server.root_dir.glob("*.ipynb"), key=lambda p: p.stat().st_mtime)
    assert saved, "the notebook was not saved"
    html = export_html(saved[-1])
    (out_dir / "graph-notebook.html").write_text(html, encoding="utf-8")
    assert 'class="terra-graph-svg"' in html and 'class="terra-speedup-svg"' in html
    for _, message in BAD_CELLS.values():
        assert message.replace("'", "&#x27;") in html or message in html


def export_html(path):
    """nbconvert's HTML (lab template) of a saved notebook, without executing it."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(path), as_version=4)
    body, _ = HTMLExporter().from_notebook_node(nb)
    return body

