"""`python -m terra run SCRIPT [ARGS]` behaves like `python SCRIPT`: argv, __main__,
sibling imports, sys.path[0], stdout, stderr tracebacks, exit codes, atexit, pickling
of classes defined in the script; plus TERRA_STATS and TERRA_DISABLE.

Each behaviour is checked by running the same script both ways and comparing.
"""

import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]

SCRIPT = '''
import atexit, os, pickle, sys
import helper
from helper import Point


class Local:
    def __init__(self, v):
        self.v = v


def main():
    print("argv", sys.argv)
    print("name", __name__, "file", __file__ == os.path.abspath(sys.argv[0]))
    print("path0", sys.path[0] == os.path.dirname(os.path.abspath(__file__)))
    print("main module", sys.modules["__main__"].__dict__ is globals())
    print("spec", __spec__, "package", __package__, "cached", __cached__)
    print("helper", helper.double(21), Point(1, 2))
    print("pickle", pickle.loads(pickle.dumps(Local(5))).v)
    total = 0
    for i in range(5):
        if i == 3:
            continue
        total += i
    print("total", total)
    atexit.register(print, "atexit ran")
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode == "exit3":
        sys.exit(3)
    if mode == "exitmsg":
        sys.exit("goodbye")
    if mode == "raise":
        def deep(n):
            if n == 0:
                raise ValueError("deep failure")
            return deep(n - 1)
        deep(2)
    if mode == "interrupt":
        raise KeyboardInterrupt


for _k in range(2):
    pass
print("globals", sorted(globals()))

if __name__ == "__main__":
    main()
'''

HELPER = '''
import collections
Point = collections.namedtuple("Point", "x y")


def double(x):
    return 2 * x
'''


@pytest.fixture
def script_dir(tmp_path):
    (tmp_path / "prog").mkdir()
    (tmp_path / "prog" / "script.py").write_text(textwrap.dedent(SCRIPT))
    (tmp_path / "prog" / "helper.py").write_text(textwrap.dedent(HELPER))
    return tmp_path


def run(script_dir, args, terra, **env_overrides):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT)
    env.pop("TERRA_STATS", None)
    env.pop("TERRA_DISABLE", None)
    env.update(env_overrides)
    prefix = [sys.executable, "-m", "terra", "run"] if terra else [sys.executable]
    return subprocess.run([*prefix, "prog/script.py", *args], cwd=script_dir, env=env,
                          capture_output=True, text=True, timeout=120)


def engine_available():
    probe = subprocess.run([sys.executable, "-c", "from terra import _engine_api as a; "
                            "print(a.unavailable_reason())"],
                           env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
                           capture_output=True, text=True, timeout=120)
    return probe.stdout.strip() == "None", probe.stdout + probe.stderr


def strip_engine_warning(stderr):
    """Without a built engine, `terra run` warns once; that line is not the script's."""
    lines = stderr.splitlines(keepends=True)
    out, skip = [], False
    for line in lines:
        if "co-execution engine is unavailable" in line:
            skip = True
            continue
        if skip:
            skip = False
            if line.startswith("  "):
                continue
        out.append(line)
    return "".join(out)


@pytest.mark.parametrize("args", [[], ["exit3"], ["exitmsg"], ["raise"], ["interrupt"],
                                  ["a b", "--flag=1"]])
def test_terra_run_matches_python(script_dir, args):
    plain = run(script_dir, args, terra=False)
    terra = run(script_dir, args, terra=True)
    assert terra.stdout == plain.stdout
    assert terra.returncode == plain.returncode
    assert strip_engine_warning(terra.stderr) == plain.stderr
    expected = {"exit3": 3, "exitmsg": 1, "raise": 1, "interrupt": -signal.SIGINT}
    assert plain.returncode == expected.get(args[0] if args else "", 0)
    assert "atexit ran" in plain.stdout


def test_missing_script_fails_like_python(tmp_path):
    terra = subprocess.run([sys.executable, "-m", "terra", "run", "nope.py"], cwd=tmp_path,
                           env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
                           capture_output=True, text=True, timeout=120)
    plain = subprocess.run([sys.executable, "nope.py"], cwd=tmp_path, capture_output=True,
                           text=True, timeout=120)
    assert terra.returncode == plain.returncode == 2
    assert "can't open file" in terra.stderr


def test_usage_without_script():
    proc = subprocess.run([sys.executable, "-m", "terra"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, timeout=120)
    assert proc.returncode == 2 and "usage" in proc.stderr and proc.stdout == ""


def test_broken_stats_path_warns_and_keeps_exit_code(script_dir):
    terra = run(script_dir, [], terra=True, TERRA_STATS=str(script_dir / "no" / "such" / "x.json"))
    assert terra.returncode == 0
    assert "could not write TERRA_STATS" in terra.stderr
    assert terra.stdout == run(script_dir, [], terra=False).stdout


STATS_KEYS = ("iterations_traced", "iterations_coexecuted", "fallbacks", "fetches", "feeds",
              "graph_nodes", "graph_branches", "regions", "time_python_s", "time_graph_s")

TRAIN = '''
import torch
torch.manual_seed(0)
model = torch.nn.Linear(4, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
x = torch.randn(8, 4)
for step in range(12):
    opt.zero_grad()
    loss = model(x).pow(2).mean()
    loss.backward()
    opt.step()
    print(step, loss.item())
'''


@pytest.mark.parametrize("disabled", [False, True])
def test_stats_file_and_disable(tmp_path, disabled):
    available, why = engine_available()
    assert available, f"terra engine not importable: {why}"
    (tmp_path / "prog").mkdir()
    (tmp_path / "prog" / "script.py").write_text(TRAIN)
    stats_path = tmp_path / "stats.json"
    env = {"TERRA_STATS": str(stats_path)}
    if disabled:
        env["TERRA_DISABLE"] = "1"
    terra = run(tmp_path, [], terra=True, **env)
    plain = run(tmp_path, [], terra=False)
    assert terra.returncode == 0, terra.stderr
    assert terra.stdout == plain.stdout
    stats = json.loads(stats_path.read_text())
    assert set(STATS_KEYS) <= set(stats)
    if disabled:
        assert stats["iterations_coexecuted"] == 0 and stats["iterations_traced"] == 0
    else:
        assert stats["iterations_coexecuted"] >= 6
        (region,) = [r for r in stats["regions"] if r["iterations_coexecuted"]]
        assert region["line"] == 7 and region["file"].endswith("script.py")


NUMPY_LOOP_IN_TRAINING = '''
import numpy as np
import torch


def synthetic_batch(rng, n):
    rows = []
    for i in range(n):  # a loop without a single tensor op
        rows.append(rng.standard_normal(4))
    return np.stack(rows)


rng = np.random.default_rng(0)
w = torch.zeros(4, requires_grad=True)
opt = torch.optim.SGD([w], lr=0.1)
for step in range(10):
    x = torch.from_numpy(synthetic_batch(rng, 3)).float()
    loss = (x @ w - 1).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    print(step, loss.item())
print(w.detach().numpy().tolist())
'''


def test_a_loop_without_tensor_ops_is_not_counted_as_coexecuted(tmp_path):
    """An iteration that follows an empty graph ran nothing through the runner: counting it
    as co-executed would let a program that never co-executes pass a stats check."""
    available, why = engine_available()
    assert available, f"terra engine not importable: {why}"
    (tmp_path / "prog").mkdir()
    (tmp_path / "prog" / "script.py").write_text(NUMPY_LOOP_IN_TRAINING)
    stats_path = tmp_path / "stats.json"
    terra = run(tmp_path, [], terra=True, TERRA_STATS=str(stats_path))
    plain = run(tmp_path, [], terra=False)
    assert terra.returncode == 0, terra.stderr
    assert terra.stdout == plain.stdout
    stats = json.loads(stats_path.read_text())
    by_line = {r["line"]: r for r in stats["regions"]}
    lines = NUMPY_LOOP_IN_TRAINING.splitlines()
    training = by_line[lines.index("for step in range(10):") + 1]
    numpy_loop = by_line[next(i for i, l in enumerate(lines) if "for i in range(n)" in l) + 1]
    assert training["iterations_coexecuted"] >= 5 and training["ops_coexecuted"] > 0
    assert numpy_loop["graph_nodes"] == 0 and numpy_loop["ops_coexecuted"] == 0
    assert numpy_loop["iterations_coexecuted"] == 0
    assert numpy_loop["iterations_without_ops"] >= 1
    assert stats["iterations_coexecuted"] == training["iterations_coexecuted"]
