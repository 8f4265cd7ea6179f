"""bench/dispatch_floor.py: its floor kernel is really reached, and it reports every figure.

Speed is not asserted (a benchmark, not a timed test). What could fail: the boxed kernel on
PrivateUse1 not being reached (add.Tensor answered by its composite kernel, or the key not
routing), which would make the "floor" an ordinary eager add; the Terra child not really
co-executing (its ops are counted); a missing figure.
"""

import json
import subprocess
import sys

from bench.registry import REPO_ROOT

SCRIPT = REPO_ROOT / "bench" / "dispatch_floor.py"


def run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)


def test_floor_child_reaches_its_kernel_for_both_answers():
    done = run("--child", "floor", "--iterations", "3")
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(figures) == {"eager_us_per_op", "existing_us_per_op", "placeholder_us_per_op"}
    assert all(value > 0 for value in figures.values())


def test_one_round_reports_floor_and_terra_side_by_side(tmp_path):
    out = tmp_path / "floor.json"
    done = run("--rounds", "1", "--iterations", "3", "--json", str(out))
    assert done.returncode == 0, done.stderr
    for label in ("floor: fresh placeholder", "Terra co-executed", "engine's own work"):
        assert label in done.stdout
    report = json.loads(out.read_text())
    (round_,) = report["rounds"]
    assert set(round_) == {"floor", "terra"}
    assert round_["terra"]["coexec_us_per_op"] > 0
    # Every measured op co-executed (3 iterations of 200 adds), none fell back to eager.
    assert round_["terra"]["coexecuted_ops"] == 3 * 200
    assert report["summary"]["ratio_to_eager"]["floor: fresh placeholder"][0] > 0
