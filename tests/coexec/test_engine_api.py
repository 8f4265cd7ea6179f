"""The low-level engine API (docs/architecture.md) and the user API of `terra`."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest
import torch

import terra
from terra.engine import engine
from engine_programs import fresh_engine, mlp

REPO = pathlib.Path(__file__).resolve().parents[2]


def _step(model, x):
    return torch.relu(model(x)).sum()


def test_low_level_api_phases_and_graph_json():
    fresh_engine()
    model = mlp()
    region_id = engine.region("api:test", "api", "test_engine_api.py", 1)
    assert engine.region("api:test", "other", "x.py", 2) == region_id  # found by key
    assert engine.phase(region_id) == "tracing"
    repeated = []
    for _ in range(5):
        x = torch.randn(4, 32)
        engine.begin_iteration(region_id)
        _step(model, x)
        engine.end_iteration()
        repeated.append(engine.last_iteration_repeated(region_id))
    engine.sync()
    assert repeated[0] is False and all(repeated[1:])
    assert engine.phase(region_id) == "coexecuting"
    assert engine.current_region() == region_id

    document = json.loads(engine.graph_json(region_id))
    assert document["format"] == "terra.graph" and document["version"] == 1
    assert document["region"]["name"] == "api"
    ops = [node["op"] for node in document["nodes"]]
    assert "aten::addmm" in ops and "aten::relu" in ops and "aten::sum" in ops
    assert terra.graph(region_id)["nodes"] == document["nodes"]
    assert terra.graph("api")["region"]["file"] == "test_engine_api.py"

    stats = terra.stats()
    for key in ("iterations_traced", "iterations_coexecuted", "fallbacks", "fetches", "feeds",
                "graph_nodes", "graph_branches", "time_python_s", "time_graph_s", "regions"):
        assert key in stats
    (entry,) = [r for r in stats["regions"] if r["id"] == region_id]
    assert entry["iterations_traced"] + entry["iterations_coexecuted"] == 5
    assert entry["iterations_coexecuted"] >= 3
    assert entry["graph_nodes"] == len(document["nodes"])


def test_step_decorator_and_nested_iterations():
    fresh_engine()
    model = mlp()
    expected = []
    results = []

    @terra.step
    def train_step(x):
        with terra.iteration("inner"):  # nested: ignored, part of the outer iteration
            return _step(model, x).item()

    for i in range(6):
        x = torch.full((4, 32), float(i) / 10)
        with torch.no_grad():
            expected.append(_step(model, x).item())
        results.append(train_step(x))
    assert results == expected
    names = {r["name"]: r for r in terra.stats()["regions"]}
    assert names["test_step_decorator_and_nested_iterations.<locals>.train_step"][
        "iterations_coexecuted"] >= 3
    assert "inner" not in names or names["inner"]["iterations_traced"] == 0


def test_reset_forgets_regions():
    fresh_engine()
    with terra.iteration("gone"):
        torch.ones(2) + 1
    assert terra.stats()["regions"]
    terra.reset()
    assert terra.stats()["regions"] == []
    assert terra.graph() == {}


@pytest.mark.timeout(120)
def test_disable_from_environment_and_quiet_stdout(tmp_path):
    script = tmp_path / "loop.py"
    script.write_text(textwrap.dedent("""
        import json, sys, torch, terra
        torch.manual_seed(0)
        w = torch.randn(8, 8, requires_grad=True)
        for i in range(6):
            with terra.iteration("loop"):
                loss = (torch.randn(4, 8) @ w).pow(2).mean()
                loss.backward()
                with torch.no_grad():
                    w -= 0.1 * w.grad
                    w.grad = None
        with open(sys.argv[1], "w") as stream:
            json.dump(terra.stats(), stream)
        print("done", round(float(w.detach().sum()), 4))
    """))

    def run(env_extra):
        env = dict(os.environ, PYTHONPATH=str(REPO), **env_extra)
        env.pop("TERRA_DEBUG", None)
        stats_path = tmp_path / "stats.json"
        done = subprocess.run([sys.executable, str(script), str(stats_path)],
                              capture_output=True, text=True, env=env, timeout=100, check=True)
        return done.stdout, json.loads(stats_path.read_text())

    out_on, stats_on = run({})
    out_off, stats_off = run({"TERRA_DISABLE": "1"})
    assert out_on == out_off  # only the program's own output, and equal values
    assert out_on.startswith("done")
    assert stats_on["iterations_coexecuted"] >= 3
    assert stats_off["iterations_coexecuted"] == 0 and stats_off["graph_nodes"] == 0


def test_manual_seed_inside_loop_keeps_the_rng_stream():
    def loop(use_terra):
        fresh_engine()
        torch.manual_seed(3)
        outs = []
        for i in range(8):
            context = terra.iteration("rng") if use_terra else torch.no_grad()
            with context:
                if i == 5:
                    torch.manual_seed(11)  # must wait for every random op already issued
                a = torch.randn(5)
                b = torch.nn.functional.dropout(torch.ones(5), 0.5)
                outs.append(a * b)
        terra.sync()
        return torch.stack(outs)

    assert torch.equal(loop(True), loop(False))
