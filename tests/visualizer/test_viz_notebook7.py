"""The graph widget in Notebook 7 (the classic-style UI), headless Chromium.

Starts `jupyter notebook` on loopback with the helpers of tests/browser (isolated
Jupyter dirs, a free port, token auth, the whole process tree stopped at the end),
opens a notebook that shows a generated graph under the kernel under test, and
expands a group by clicking it. Screenshot: artifacts/visualizer/notebook7-graph.png.
"""
import re
import subprocess

import nbformat
import pytest
from browser.jupyterlab_fixtures import (
    LabServer,
    free_loopback_port,
    isolated_jupyter_env,
    stop_lab,
    wait_until_serving,
)

CELL = """import terra
from terra.widgets.synthetic import transformer_graph
terra.show_graph(graph=transformer_graph(layers=4))"""


@pytest.fixture
def notebook7_server(tmp_path, jupyter_env, venv_bin, artifacts_dir):
    """`jupyter notebook` serving tmp_path/root (one test)."""
    root = tmp_path / "root"
    root.mkdir()
    env = isolated_jupyter_env(tmp_path, jupyter_env)
    port, token = free_loopback_port(), "t" + str(free_loopback_port())
    log_path = artifacts_dir / "visualizer" / "notebook7.log"
    log_path.parent.mkdir(exist_ok=True)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(venv_bin / "jupyter"), "notebook", "--no-browser", "--allow-root",
             "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
             f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"],
            cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
    server = LabServer(process, port, token, root, log_path)
    try:
        if not wait_until_serving(server):
            pytest.fail(f"jupyter notebook exited; see {log_path}")
        yield server
    finally:
        stop_lab(server)


@pytest.mark.timeout(300)
def test_graph_widget_in_notebook7(notebook7_server, chromium_browser, kernel_name,
                                   artifacts_dir):
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec(kernel_name)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(CELL)])
    nb.metadata["kernelspec"] = {"name": kernel_name, "display_name": spec.display_name,
                                 "language": "python"}
    nbformat.write(nb, str(notebook7_server.root_dir / "graph.ipynb"))
    context = chromium_browser.new_context(viewport={"width": 1300, "height": 900})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    try:
        page.goto(notebook7_server.url("notebooks/graph.ipynb"))
        page.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]').first.wait_for(
            state="attached", timeout=90_000)
        prompt = page.locator(".jp-Notebook .jp-CodeCell .jp-InputArea-prompt").first
        for _ in range(10):  # the kernel may still be connecting: run until it counts
            page.locator(".jp-Notebook .jp-CodeCell .cm-content").first.click()
            page.keyboard.press("Shift+Enter")
            try:
                prompt.filter(has_text=re.compile(r"\[(\d+|\*)\]")).wait_for(timeout=10_000)
                break
            except Exception:  # noqa: BLE001 (not run yet: try again)
                page.locator(".jp-Notebook .jp-CodeCell").first.click()
        widget = page.locator(".terra-graph").first
        widget.locator("g.terra-node").first.wait_for(timeout=90_000)
        widget.locator("g.terra-group", has_text="layers").click()
        fold = widget.locator("g.terra-fold").first
        fold.wait_for(timeout=60_000)
        assert "×4" in fold.text_content()
        page.screenshot(path=str(artifacts_dir / "visualizer" / "notebook7-graph.png"))
        assert not [e for e in errors if "terra" in e.lower()], errors
    finally:
        context.close()
