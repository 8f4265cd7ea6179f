"""The GraphRunner gives its OpenMP team back when it goes idle, and Python gives its own
back when co-execution starts (coexec/src/openmp_threads.h).

GNU OpenMP spins idle workers only while the process has no more OpenMP-managed threads
than CPUs; the runner's team beside Python's doubles the count, after which every parallel
region of either thread pays futex wake-ups (an eager LSTM step measured 5x slower once the
runner had run). What is asserted here is the mechanism, by thread count, not a time: in a
fresh process, so that no earlier test's runner team is counted in the baseline.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

PROGRAM = textwrap.dedent("""
    import json, os, time
    import torch
    import terra

    torch.set_num_threads(2)
    threads = lambda: len(os.listdir("/proc/self/task"))
    a, b = torch.randn(1 << 22), torch.randn(1 << 22)  # large enough to split across threads

    def kernel():
        return torch.mul(a, b).add_(1.0)

    terra.stats()  # the engine, and so the runner thread, exist from here
    expected = kernel()  # and Python's own team
    before = threads()
    for _ in range(6):
        with terra.iteration("openmp_team"):
            out = kernel()
            during = threads()  # the last iteration co-executes: the runner's team is up
    terra.sync()
    synced = threads()  # at once: the runner keeps its team for a while when idle
    SETTLE
    idle = threads()
    kernel()  # eager again: Python's team is rebuilt
    print(json.dumps({"before": before, "during": during, "synced": synced, "idle": idle,
                      "after": threads(),
                      "equal": torch.equal(out, expected),
                      "stats": next(r for r in terra.stats()["regions"]
                                    if r["name"] == "openmp_team")}))
""")


# How the program waits for the runner's team to go: until the runner's idle delay passed,
# or not at all after Engine::quiesce, which has the runner give it back at once.
SETTLE = {
    "idle": ("deadline = time.monotonic() + 10.0\n"
             "while threads() >= before and time.monotonic() < deadline:\n"
             "    time.sleep(0.02)"),
    "quiesce": "from terra.engine import engine; engine.quiesce()",
}


def _gnu_openmp_loaded() -> bool:
    import torch  # noqa: F401  (loads LibTorch and its OpenMP runtime)
    with open("/proc/self/maps") as maps:
        return "libgomp" in maps.read()


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="threads are counted in /proc")
@pytest.mark.skipif(os.path.isdir("/proc/self/task") and not _gnu_openmp_loaded(),
                    reason="the teams are released under GNU OpenMP only (PyTorch's Linux wheels)")
@pytest.mark.parametrize("settle", sorted(SETTLE))
def test_idle_runner_gives_its_openmp_team_back(tmp_path, settle):
    script = tmp_path / "openmp_team.py"
    script.write_text(PROGRAM.replace("SETTLE", SETTLE[settle]))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["equal"]
    assert result["stats"]["iterations_coexecuted"] >= 2, result  # the runner ran the kernels
    # Co-executing, the runner has a team and Python none (or neither, if the runner already
    # gave its team back).
    assert result["during"] <= result["before"], result
    # Idle, neither has; Python's next parallel kernel builds its own again.
    assert result["idle"] == result["before"] - 1, result
    if settle == "quiesce":  # no wait at all: the sync alone had left the team up
        assert result["synced"] > result["idle"], result
    assert result["after"] == result["before"], result
