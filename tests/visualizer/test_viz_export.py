"""Headless run + nbconvert export: the HTML shows the graph and the chart without widgets.

Executes a notebook with nbclient under the kernel under test (no browser), the way
`jupyter nbconvert --execute` does, then exports it to HTML. Widget state is not stored
(`store_widget_state=False`, which is also what JupyterLab saves by default): with it,
nbconvert would pick the widget view, which needs the live front end, over the
text/html that every Terra bundle carries.
"""
import nbformat
import pytest
from nbclient import NotebookClient
from nbconvert import HTMLExporter

from test_viz_browser import GRAPH_CELL, SPEEDUP_CELL, TRAIN_CELL, eager_losses


def outputs_text(cell):
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


@pytest.mark.timeout(400)
def test_executed_notebook_exports_static_graph_and_chart(kernel_name, jupyter_env,
                                                          artifacts_dir, tmp_path):
    cells = [TRAIN_CELL, GRAPH_CELL, SPEEDUP_CELL, "terra.show_graph()",
             'terra.show_graph(graph={"format": "terra.graph", "version": 0, "nodes": []})']
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(nb, kernel_name=kernel_name, timeout=300, store_widget_state=False,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert [ln for ln in outputs_text(nb.cells[0]).splitlines()
            if ln.startswith("terra-loss")] == eager_losses()
    for cell in nb.cells:
        errors = [f"{o.ename}: {o.evalue}" for o in cell.outputs if o.output_type == "error"]
        assert not errors, (cell.source, errors)
    graph_bundles = [o for c in nb.cells for o in c.outputs
                     if o.output_type in ("display_data", "execute_result")
                     and "terra-graph-svg" in o.get("data", {}).get("text/html", "")]
    assert len(graph_bundles) == 2  # GraphWidget().display() and terra.show_graph()
    for bundle in graph_bundles:
        assert "application/vnd.jupyter.widget-view+json" in bundle["data"]
        assert "nodes" in bundle["data"]["text/plain"]

    html, _ = HTMLExporter().from_notebook_node(nb)
    out_dir = artifacts_dir / "visualizer"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "executed-notebook.html").write_text(html, encoding="utf-8")
    assert html.count('class="terra-graph-svg"') == 2
    # The Terra kernel's live chart below the training loop, and SPEEDUP_CELL's own view.
    auto_charts = [o for o in nb.cells[0].outputs
                   if o.get("metadata", {}).get("terra", {}).get("view") == "speedup"]
    assert len(auto_charts) == (1 if kernel_name == "terra" else 0)
    assert html.count('class="terra-speedup-svg"') == 1 + len(auto_charts)
    assert "version 0 is not supported" in html and 'class="terra-error"' in html
