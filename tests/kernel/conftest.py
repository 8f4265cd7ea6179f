"""Fixtures of the Terra kernel tests: a running kernel and a front end that speaks to it.

Every test here talks to the *installed* kernelspec `terra` (``cmake --install``
or ``make install`` puts it into .venv/share/jupyter) over real ZMQ channels.
"""
import pytest

from kernel_harness import KernelSession


@pytest.fixture(scope="session", autouse=True)
def _terra_kernelspec(jupyter_env, kernel_name):
    """JUPYTER_PATH points at the venv (so `terra` is found) for every test here."""
    if kernel_name != "terra":
        pytest.skip("tests/kernel test the Terra kernel itself")
    return kernel_name


@pytest.fixture(scope="module")
def kernel():
    """One Terra kernel per test module, shut down (and checked gone) at the end."""
    session = KernelSession.start()
    yield session
    session.shutdown()
