"""Shutdown and restart: clean, no process of the kernel left behind."""
import os
import time

import psutil
import pytest
from kernel_harness import KernelSession


def _group_alive(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_gone(pid, pgid, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid) and not _group_alive(pgid):
            return True
        time.sleep(0.1)
    return False


@pytest.mark.timeout(90)
def test_shutdown_leaves_no_process():
    kernel = KernelSession.start()
    pid = kernel.pid
    pgid = os.getpgid(pid)
    process = psutil.Process(pid)
    assert process.children(recursive=True) == []  # no helper processes of our own
    # Work that starts threads (output reader, torch's pools) and a child that ends.
    result = kernel.run("import torch\nprint(torch.ones(3).sum().item())\n!echo child")
    assert result.status == "ok", result.reply
    assert result.stream() == "3.0\nchild\r\n"
    popen = kernel.km.provisioner.process
    kernel.kc.stop_channels()
    started = time.monotonic()
    kernel.km.shutdown_kernel(now=False)
    assert _wait_gone(pid, pgid), "kernel process (or its group) still alive"
    # A clean shutdown_request ends the process by itself (no SIGKILL after 5 s), with 0.
    assert time.monotonic() - started < 4.5
    assert popen.wait(timeout=5) == 0


@pytest.mark.timeout(120)
def test_restart_gives_a_fresh_working_kernel():
    kernel = KernelSession.start()
    try:
        assert kernel.run("state = 'old'").status == "ok"
        old_pid = kernel.pid
        old_pgid = os.getpgid(old_pid)
        kernel.km.restart_kernel(now=False)
        assert _wait_gone(old_pid, old_pgid), "the old kernel survived the restart"
        kernel.kc.wait_for_ready(timeout=60)
        assert kernel.pid != old_pid
        result = kernel.run("print('state' in globals())")
        assert result.status == "ok"
        assert result.stream() == "False\n"
        assert kernel.run("print(1 + 1)").stream() == "2\n"
    finally:
        pid, pgid = kernel.pid, os.getpgid(kernel.pid)
        kernel.shutdown()
        assert _wait_gone(pid, pgid)


@pytest.mark.timeout(90)
def test_shutdown_while_a_cell_runs():
    kernel = KernelSession.start()
    pid, pgid = kernel.pid, os.getpgid(kernel.pid)
    msg_id = kernel.execute("import time\nprint('started', flush=True)\ntime.sleep(60)")
    kernel.wait_for(msg_id, lambda m: m["msg_type"] == "stream")
    started = time.monotonic()
    kernel.kc.stop_channels()
    kernel.km.shutdown_kernel(now=False)
    assert _wait_gone(pid, pgid)
    assert time.monotonic() - started < 4.5, "the running cell blocked the shutdown"
