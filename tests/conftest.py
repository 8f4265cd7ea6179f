"""Fixtures shared by every pytest suite under tests/.

Kept small and generic: where the repository and its artifacts live, the Jupyter
environment of the project's virtualenv, and which kernel the notebook and browser
tests run under. The JupyterLab + Chromium fixtures live in
`tests/browser/jupyterlab_fixtures.py` and are registered here as a plugin, so any
test (tests/visualizer/ included) can request them by name.

Knob (tests only):
  TERRA_TEST_KERNEL  kernel the notebook/browser tests run under (default `terra`);
                     `python3` runs them against ipykernel while the Terra kernel
                     is not installed yet.

Marker: `cuda` — the test needs a CUDA GPU; it is skipped, with the reason, where
torch.cuda.is_available() is false (STYLE.md §9). Select them with `-m cuda`.
"""
import os
import pathlib
import sys

import pytest

TESTS_DIR = pathlib.Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
# pytest's default import mode already puts tests/ on sys.path for this conftest;
# made explicit so the plugin below resolves under any import mode.
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

# Registered in this top-level conftest (pytest forbids pytest_plugins in nested ones).
pytest_plugins = ("browser.jupyterlab_fixtures",)

ARTIFACTS_DIR = REPO_ROOT / "artifacts"
NO_CUDA_REASON = "no CUDA GPU here: torch.cuda.is_available() is False"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "cuda: needs a CUDA GPU; skipped where torch.cuda.is_available() is false")


def pytest_collection_modifyitems(config, items):
    """Skips the tests marked `cuda` when there is no GPU (imports torch only if any is)."""
    marked = [item for item in items if item.get_closest_marker("cuda")]
    if not marked:
        return
    import torch  # noqa: PLC0415 (only sessions that collected a cuda test pay for it)

    if not torch.cuda.is_available():
        for item in marked:
            item.add_marker(pytest.mark.skip(reason=NO_CUDA_REASON))
VENV_BIN = pathlib.Path(sys.executable).parent
VENV_JUPYTER_DATA = pathlib.Path(sys.prefix) / "share" / "jupyter"
DEFAULT_KERNEL = "terra"


@pytest.fixture(scope="session")
def repo_root():
    """The repository root (the directory holding CMakeLists.txt)."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def artifacts_dir():
    """/work/main/artifacts (created): where tests leave reports and screenshots."""
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS_DIR


@pytest.fixture(scope="session")
def venv_bin():
    """The bin/ directory of the virtualenv running pytest (jupyter, python)."""
    return VENV_BIN


@pytest.fixture(scope="session")
def jupyter_env():
    """Environment with the venv's share/jupyter first on JUPYTER_PATH.

    Applied to this process for the session (so in-process nbclient finds the
    kernelspecs installed into the venv, e.g. `terra`) and returned as a dict for
    subprocesses.
    """
    existing = os.environ.get("JUPYTER_PATH")
    jupyter_path = os.pathsep.join(filter(None, [str(VENV_JUPYTER_DATA), existing]))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", jupyter_path)
        patch.setenv("JUPYTER_PLATFORM_DIRS", "1")
        patch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
        yield dict(os.environ)


@pytest.fixture(scope="session")
def kernel_name(jupyter_env):
    """Name of the kernel under test: TERRA_TEST_KERNEL, or `terra`.

    Fails (rather than skips) when its kernelspec is not installed: under
    `make test` the Terra kernel is installed first, so a missing spec is a bug.
    """
    from jupyter_client.kernelspec import KernelSpecManager

    name = os.environ.get("TERRA_TEST_KERNEL", DEFAULT_KERNEL)
    specs = KernelSpecManager().find_kernel_specs()
    if name not in specs:
        pytest.fail(
            f"kernelspec {name!r} not found on JUPYTER_PATH={jupyter_env['JUPYTER_PATH']}"
            f" (found: {sorted(specs)}); run `make install`, or set"
            " TERRA_TEST_KERNEL=python3 to test against ipykernel"
        )
    return name


@pytest.fixture(scope="session")
def kernel_display_name(kernel_name):
    """The display name of the kernel under test, as launchers show it."""
    from jupyter_client.kernelspec import KernelSpecManager

    return KernelSpecManager().get_kernel_spec(kernel_name).display_name
