"""A real browser on a real JupyterLab: the kernel under test is offered by the
launcher, runs a PyTorch cell typed into a new notebook, and the page shows what the
same computation gives in this process. Screenshots go to artifacts/browser/.

Fixtures: tests/browser/jupyterlab_fixtures.py.
"""
import pytest
import torch

TERRA_DISPLAY_NAME = "Terra (PyTorch)"

CELL = """import torch
g = torch.Generator().manual_seed(7)
w = torch.randn(3, 4, generator=g)
x = torch.linspace(-1.0, 1.0, 8).reshape(2, 4)
print("terra-browser-result", torch.relu(x @ w.T).sum(dim=1))"""


def expected_cell_output():
    """What CELL prints, computed here with eager PyTorch."""
    g = torch.Generator().manual_seed(7)
    w = torch.randn(3, 4, generator=g)
    x = torch.linspace(-1.0, 1.0, 8).reshape(2, 4)
    return f"terra-browser-result {torch.relu(x @ w.T).sum(dim=1)}"


def test_kernel_spec_has_terra_display_name(kernel_name, kernel_display_name):
    if kernel_name != "terra":
        pytest.skip(f"testing kernel {kernel_name!r}, not terra")
    assert kernel_display_name == TERRA_DISPLAY_NAME


@pytest.mark.timeout(240)
def test_notebook_with_kernel_runs_torch_cell_in_browser(lab_page, kernel_display_name):
    card = lab_page.launcher_card(kernel_display_name)
    card.wait_for(state="visible")
    lab_page.screenshot("launcher")

    lab_page.new_notebook(kernel_display_name)
    output = lab_page.run_cell(CELL)
    lab_page.screenshot("notebook-torch-cell")

    assert output.strip() == expected_cell_output()
