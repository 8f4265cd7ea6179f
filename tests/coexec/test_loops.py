"""Unit tests of the pure-Python layer: AST loop marking (terra.loops) and the region
policy (terra.regions), against a small recording fake of the low-level engine API.

The fake lives in this test only; the corpus (test_corpus.py) runs the real engine.
"""

import ast
import asyncio
import builtins
import sys
import textwrap
import threading
import traceback

import pytest

from terra import _engine_api, loops, regions


class FakeEngine:
    """Records the calls the policy makes; "tensor ops" are `op(tag)` calls of the test.

    A region's graph is the set of its merged traces; an iteration repeated when its
    trace is a prefix of a merged one (the prefix tree of DESIGN §3).
    """

    def __init__(self):
        self.events = []
        self.keys = {}
        self.graphs = {}
        self.current = None  # (region id, list of tags) of the open iteration
        self.repeated = {}
        self.module_paths = []
        self.enabled = True

    def region(self, key, name, file, line):
        if key not in self.keys:
            self.keys[key] = len(self.keys) + 1
            self.graphs[self.keys[key]] = []
        return self.keys[key]

    def key_of(self, region_id):
        return next(k for k, v in self.keys.items() if v == region_id)

    def begin_iteration(self, region_id):
        assert self.current is None, "two iterations open at once"
        self.current = (region_id, [])
        self.events.append(("begin", self.key_of(region_id)))

    def _close(self, kind):
        assert self.current is not None, f"{kind} without an open iteration"
        region_id, trace = self.current
        self.events.append((kind, self.key_of(region_id)))
        self.current = None
        return region_id, tuple(trace)

    def end_iteration(self):
        region_id, trace = self._close("end")
        graph = self.graphs[region_id]
        self.repeated[region_id] = any(t[: len(trace)] == trace for t in graph)
        if not self.repeated[region_id]:
            graph.append(trace)

    def abort_iteration(self):
        self._close("abort")

    def last_iteration_repeated(self, region_id):
        return self.repeated.get(region_id, False)

    def stats(self):
        return {"regions": [{"id": rid, "graph_nodes": len({tag for t in g for tag in t})}
                            for rid, g in self.graphs.items()]}

    def is_enabled(self):
        return self.enabled

    def set_enabled(self, enabled):
        self.enabled = enabled

    def phase(self, region_id):
        return "coexecuting" if self.repeated.get(region_id) else "tracing"

    def explain(self):
        return "fake: no fallback"

    def graph_json(self, region_id=-1):
        return ""

    def sync(self):
        pass

    def quiesce(self):
        pass

    def reset(self):
        self.events.append(("reset",))

    def set_module_path(self, path):
        if self.current is not None:
            self.module_paths.append(path)

    def op(self, tag):
        """A tensor op issued by the program: recorded only inside an open iteration."""
        if self.current is not None:
            self.current[1].append(tag)

    def in_iteration(self):
        return self.current is not None


@pytest.fixture
def fake(monkeypatch):
    """A fresh policy wired to a FakeEngine, installed as `__terra_loop__`."""
    engine = FakeEngine()
    policy = regions.RegionPolicy()
    monkeypatch.setattr(_engine_api._Lookup, "engine", engine)
    monkeypatch.setattr(regions, "POLICY", policy)
    monkeypatch.setattr(builtins, loops.RUNTIME_NAME, policy.loop, raising=False)
    monkeypatch.setattr(builtins, loops.INNER_RUNTIME_NAME, policy.inner_loop, raising=False)
    engine.policy = policy
    return engine


def run_both(source, fake, entry="main"):
    """Executes `source` plain and marked; returns (plain result, marked result, namespace)."""
    source = textwrap.dedent(source)
    plain_ns = {"op": lambda tag: None}
    exec(compile(source, "<plain>", "exec"), plain_ns)
    marked_ns = {"op": fake.op, "engine": fake}
    exec(loops.compile_marked(source, "<marked>"), marked_ns)
    return plain_ns[entry](), marked_ns[entry](), marked_ns


SEMANTICS = {
    "break_continue_else": """
        def main():
            out = []
            for i in range(10):
                op("a")
                if i == 1:
                    continue
                if i == 6:
                    break
                out.append(i)
            else:
                out.append("else-not-reached")
            for i in range(3):
                op("b")
            else:
                out.append("else")
            return out
    """,
    "while_return": """
        def main():
            j, out = 0, []
            while True:
                op("w")
                j += 1
                out.append(j)
                if j == 4:
                    return out
    """,
    "nested_and_recursion": """
        def walk(tree, depth=0):
            total = 0
            for child in tree:
                op("node")
                total += walk(child, depth + 1) if isinstance(child, list) else child
            return total
        def main():
            return walk([1, [2, [3, 4]], [5], 6])
    """,
    "exceptions_caught_inside_and_outside": """
        def main():
            out = []
            for i in range(5):
                try:
                    op("x")
                    if i == 2:
                        raise ValueError(i)
                    out.append(i)
                except ValueError as e:
                    out.append(("caught", e.args[0]))
            try:
                for i in range(5):
                    op("y")
                    if i == 3:
                        raise KeyError(i)
            except KeyError as e:
                out.append(("outer", e.args[0], i))
            return out
    """,
    "generators": """
        def batches(n):
            for i in range(n):
                op("gen")
                yield [i] * (i % 3 + 1)
            k = 0
            while k < 2:
                k += 1
            yield [k]
        def main():
            out = []
            for b in batches(5):
                op("consume")
                out.append(sum(b))
            return out
    """,
    "class_level_loop": """
        class Table:
            squares = []
            for i in range(4):
                squares.append(i * i)
        def main():
            return Table.squares, sorted(k for k in vars(Table) if "terra" in k)
    """,
    "async_loops": """
        import asyncio
        async def agen():
            for i in range(3):
                yield i
        async def work():
            out = []
            async for v in agen():
                out.append(v)
            for i in range(3):
                await asyncio.sleep(0)
                out.append(i)
            for i in range(2):
                out.append(-i)
            return out
        def main():
            return asyncio.run(work())
    """,
    "loop_in_finally_and_with": """
        import contextlib
        def main():
            out = []
            with contextlib.suppress(ZeroDivisionError):
                for i in range(3):
                    out.append(1 // (1 - i))
            try:
                pass
            finally:
                for i in range(2):
                    out.append(i)
            return out
    """,
}


@pytest.mark.parametrize("name", sorted(SEMANTICS))
def test_marked_loops_keep_semantics(name, fake):
    plain, marked, _ = run_both(SEMANTICS[name], fake)
    assert marked == plain
    assert fake.current is None, "an iteration was left open"


@pytest.mark.parametrize("name", sorted(SEMANTICS))
def test_loops_given_up_on_keep_semantics_unwrapped(name, fake):
    """The second run, with every site given up on: innermost loops take their unwrapped
    copy (terra/loops.py), which must behave as the plain loop does."""
    plain, _, namespace = run_both(SEMANTICS[name], fake)
    for site in fake.policy.sites.values():
        site.decide(regions.Status.TRANSPARENT, "given up on by the test")
    assert namespace["main"]() == plain
    assert fake.current is None


def test_innermost_loops_given_up_on_run_without_the_per_iteration_calls(fake, monkeypatch):
    source = textwrap.dedent("""
        def main():
            total = 0
            for step in range(3):
                for k in range(5):
                    total += k
            for k in range(7):
                total += k
            return total
    """)
    namespace = {"op": fake.op}
    exec(loops.compile_marked(source, "s.py", display_file="s.py"), namespace)
    assert namespace["main"]() == 51
    for site in fake.policy.sites.values():
        site.decide(regions.Status.TRANSPARENT, "given up on by the test")
    begun = []
    monkeypatch.setattr(regions.LoopRun, "begin", lambda run: begun.append(run.site.line))
    monkeypatch.setattr(regions.PassiveRun, "begin", lambda run: begun.append("passive"))
    assert namespace["main"]() == 51
    # The outer loop has a loop inside, so no unwrapped copy: a passive run's empty call per
    # iteration. The inner loops run their unwrapped copies: no call at all.
    assert begun == ["passive"] * 3


@pytest.mark.parametrize("why", ["disabled", "other_thread"])
def test_loops_that_cannot_take_iterations_run_unwrapped(fake, monkeypatch, why):
    """With co-execution off, or on a thread other than the main one, no loop run takes an
    iteration: innermost loops run their unwrapped copies, the others passive runs."""
    source = textwrap.dedent("""
        def main():
            out = []
            for step in range(3):
                op("fwd")
                for k in range(4):
                    out.append(k)
            return out
    """)
    namespace = {"op": fake.op}
    exec(loops.compile_marked(source, "s.py", display_file="s.py"), namespace)
    begun = []
    monkeypatch.setattr(regions.LoopRun, "begin", lambda run: begun.append(run.site.line))
    if why == "disabled":
        monkeypatch.setattr(fake, "is_enabled", lambda: False, raising=False)
        result = namespace["main"]()
    else:
        results = []
        thread = threading.Thread(target=lambda: results.append(namespace["main"]()))
        thread.start()
        thread.join()
        result = results[0]
    assert result == [0, 1, 2, 3] * 3
    assert begun == []
    assert fake.current is None


def test_loops_declaring_globals_are_not_copied():
    """A second `global` after the first copy's uses would not compile."""
    source = textwrap.dedent("""
        count = 0
        def main():
            for i in range(3):
                global count
                count += i
            return count
    """)
    tree = loops.mark_loops(ast.parse(source), "g", "g.py", "g.py")
    assert not any(isinstance(node, ast.If) for node in ast.walk(tree))
    compile(tree, "g.py", "exec")


def test_marked_module_level_loops_leave_no_names(fake):
    source = "total = 0\nfor i in range(3):\n    total += i\nwhile total < 10:\n    total += 1\n"
    namespace = {}
    exec(loops.compile_marked(source, "<m>"), namespace)
    assert namespace["total"] == 10 and namespace["i"] == 2
    assert not [k for k in namespace if "terra" in k]


def tb_summary(source, name):
    namespace = {"op": lambda tag: None}
    code = (loops.compile_marked(source, name) if name == "<marked>"
            else compile(source, name, "exec"))
    with pytest.raises(ZeroDivisionError) as info:
        exec(code, namespace)
        namespace["main"]()
    return [(f.lineno, f.name) for f in traceback.extract_tb(info.value.__traceback__)][1:]


def test_tracebacks_keep_line_numbers(fake):
    source = textwrap.dedent("""
        def inner(x):
            return 1 / x
        def main():
            for i in range(3, -1, -1):
                while True:
                    y = inner(i)
                    break
    """)
    assert tb_summary(source, "<marked>") == tb_summary(source, "<plain>")
    assert tb_summary(source, "<marked>")[-1] == (3, "inner")
    # The unwrapped copy of the innermost loop, taken once its site is given up on.
    for site in fake.policy.sites.values():
        site.decide(regions.Status.TRANSPARENT, "given up on by the test")
    assert tb_summary(source, "<marked>") == tb_summary(source, "<plain>")


def test_suspending_loops_are_not_marked():
    source = textwrap.dedent("""
        def gen():
            for i in range(3):
                yield i
            for i in range(3):
                def nested():
                    yield 1
        async def coro():
            for i in range(2):
                await thing()
            async for i in things():
                pass
            while False:
                pass
    """)
    marker = loops.LoopMarker("k", "f", "f")
    marker.visit(ast.parse(source))
    assert marker.marked == 2  # the loop defining `nested`, and the while in coro


def test_no_iteration_is_open_while_a_generator_runs(fake):
    source = """
        def batches():
            for i in range(6):
                engine.op("gen")
                yield i
        def main():
            seen = []
            for b in batches():
                seen.append(engine.in_iteration())
                engine.op("step")
            return seen
    """
    source = textwrap.dedent(source)
    events = []
    fake.op = lambda tag: events.append((tag, fake.in_iteration())) or FakeEngine.op(fake, tag)
    namespace = {"engine": fake}
    exec(loops.compile_marked(source, "<marked>"), namespace)
    seen = namespace["main"]()
    assert all(not inside for tag, inside in events if tag == "gen")
    assert any(seen), "the consuming loop never became a region"


def status_of(fake, line_substring):
    (site,) = [s for s in fake.policy.sites.values() if s.name.endswith(line_substring)]
    return site.status


def test_nested_loop_that_never_repeats_is_rejected(fake):
    source = textwrap.dedent("""
        import itertools
        counter = itertools.count()
        def main():
            for step in range(40):                 # line 5
                for i in range(3):                 # line 6: never repeats
                    op(f"unique{next(counter)}")
                op("update")
    """)
    namespace = {"op": fake.op}
    exec(loops.compile_marked(source, "s.py", display_file="s.py"), namespace)
    namespace["main"]()
    inner = next(s for s in fake.policy.sites.values() if s.name.endswith(":6"))
    outer = next(s for s in fake.policy.sites.values() if s.name.endswith(":5"))
    assert inner.status is regions.Status.TRANSPARENT
    assert inner.misses == regions.RegionPolicy.PROBE_MISSES
    assert inner.skipped > 0, "probing the inner loop never backed off"
    assert outer.traced > 0, "the enclosing loop never became the candidate"
    assert fake.current is None


def test_probing_backs_off_while_a_loop_never_repeats(fake):
    """Probes thin out (every 2nd, 4th, 8th iteration); the budget counts probes."""
    source = textwrap.dedent("""
        def main():
            for step in range(400):                # line 3: never repeats
                op(f"shape{step}")
    """)
    namespace = {"op": fake.op}
    exec(loops.compile_marked(source, "s.py", display_file="s.py"), namespace)
    namespace["main"]()
    site = next(s for s in fake.policy.sites.values() if s.name.endswith(":3"))
    key = site.key
    assert site.status is regions.Status.TRANSPARENT
    policy = regions.RegionPolicy
    assert site.misses == policy.PROBE_MISSES_OUTERMOST
    begins = [e for e in fake.events if e == ("begin", key)]
    assert len(begins) == policy.PROBE_MISSES_OUTERMOST + 1  # the first, then the misses
    # Which iterations were probed: the graph's traces name their step.
    steps = [int(trace[0][len("shape"):]) for trace in fake.graphs[fake.keys[key]]]
    gaps = [b - a for a, b in zip(steps, steps[1:])]
    assert gaps[: policy.PROBE_DENSE] == [1] * policy.PROBE_DENSE
    assert gaps == sorted(gaps) and gaps[-1] == policy.PROBE_MAX_GAP
    assert site.skipped == steps[-1] + 1 - len(steps)
    assert fake.current is None


def test_loop_without_tensor_ops_does_not_steal_the_region(fake):
    source = textwrap.dedent("""
        def main():
            total = 0
            for step in range(8):
                op("fwd")
                for k in range(4):          # pure Python: no tensor op
                    total += k
                op("bwd")
            return total
    """)
    namespace = {"op": fake.op}
    exec(loops.compile_marked(source, "s.py", display_file="s.py"), namespace)
    assert namespace["main"]() == 48
    assert status_of(fake, ":6") is regions.Status.TRANSPARENT
    assert status_of(fake, ":4") is regions.Status.REGION


@pytest.mark.parametrize("exc_type", [ValueError, KeyboardInterrupt])
def test_exceptions_abort_the_iteration(fake, exc_type):
    source = textwrap.dedent("""
        def main(exc_type):
            done = []
            for step in range(6):
                try:
                    for i in range(5):
                        op("a")
                        if step == 4 and i == 3:
                            raise exc_type("stop")
                        op("b")
                except exc_type:
                    done.append(step)
            return done
    """)
    namespace = {"op": fake.op}
    exec(loops.compile_marked(source, "s.py", display_file="s.py"), namespace)
    assert namespace["main"](exc_type) == [4]
    assert [e for e in fake.events if e[0] == "abort"], "the iteration was not aborted"
    assert fake.current is None


def test_cell_runs_are_regions_unless_they_contain_one(fake):
    policy = fake.policy
    for _ in range(3):
        run = policy.cell_run("cell-a", "cell a")
        run.begin()
        fake.op("x")
        run.end()
    assert policy.sites["cell-a"].status is regions.Status.REGION
    source = "for i in range(4):\n    op('inner')\n"
    for _ in range(3):
        run = policy.cell_run("cell-b", "cell b")
        run.begin()
        fake.op("before")
        exec(loops.compile_marked(source, "<cell>", key_prefix="cell-b"), {"op": fake.op})
        run.end()
    assert policy.sites["cell-b"].status is regions.Status.CONTAINER
    assert policy.sites["cell-b:1:0"].status is regions.Status.REGION


def test_disabled_engine_is_never_asked(fake):
    fake.enabled = False
    plain, marked, _ = run_both(SEMANTICS["break_continue_else"], fake)
    assert plain == marked and fake.events == []


def test_module_path_hooks_follow_nested_modules(fake):
    torch = pytest.importorskip("torch")

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(2, 2)

        def forward(self, x):
            return torch.relu(self.linear(x))

    model = torch.nn.Sequential(Block(), torch.nn.Linear(2, 1))
    source = "def main(model, x):\n    for i in range(2):\n        model(x)\n"
    namespace = {}
    exec(loops.compile_marked(source, "m.py"), namespace)
    namespace["main"](model, torch.ones(1, 2))
    assert "Sequential/0/linear" in fake.module_paths
    assert "Sequential/1" in fake.module_paths
    assert fake.module_paths[-1] == ""
    # Outside iterations the global hooks are gone.
    assert not torch.nn.modules.module._global_forward_pre_hooks


def test_ipython_extension_marks_cells_and_makes_cell_regions(fake, capsys, monkeypatch):
    from IPython.core.interactiveshell import InteractiveShell

    import terra
    from terra import ipython

    # The visualizer's terra.show_graph talks to the real engine; here: the text summary.
    monkeypatch.delattr(terra, "show_graph", raising=False)

    shell = InteractiveShell.instance()
    try:
        ipython.load_ipython_extension(shell)
        shell.user_ns["op"] = fake.op
        cell = "total = 0\nfor i in range(5):\n    op('a')\n    total += i\ntotal"
        for _ in range(3):
            result = shell.run_cell(cell, store_history=True)
            assert result.success and result.result == 10
        assert "__terra_loop_0__" not in shell.user_ns
        statuses = {s.key.split(":")[0][:8]: s.status for s in fake.policy.sites.values()}
        assert statuses["cell-" + loops.source_key(cell)[:3]] is regions.Status.REGION
        assert statuses["cellrun-"] is regions.Status.CONTAINER
        # A cell without loops is a region of its own once it repeats.
        for _ in range(3):
            assert shell.run_cell("op('b')\nop('c')").success
        plain_cell = [s for s in fake.policy.sites.values() if s.key.startswith("cellrun-")]
        assert regions.Status.REGION in {s.status for s in plain_cell}
        # An exception in a cell aborts its iteration; the next cell still works.
        failing = shell.run_cell("op('b')\nraise ValueError('x')")
        assert isinstance(failing.error_in_exec, ValueError)
        assert fake.events[-1][0] == "abort" and fake.current is None
        shell.run_cell("%terra explain")
        shell.run_cell("%terra off")
        assert not fake.enabled
        shell.run_cell("%terra on")
        assert fake.enabled
        assert "fake: no fallback" in capsys.readouterr().out
        shell.run_cell(cell)
        shell.run_cell("%terra bench 2")
        shell.run_cell("%terra graph")
        out = capsys.readouterr().out
        assert "speedup" in out and "no graph yet" in out
        status = shell.run_cell("%terra status")
        assert status.success
        shell.run_cell("%terra reset")
        assert fake.events[-1] == ("reset",) and not fake.policy.sites
    finally:
        ipython.unload_ipython_extension(shell)
        InteractiveShell.clear_instance()


def test_outermost_loop_gets_a_longer_probe_budget(fake):
    source = textwrap.dedent("""
        def main():
            for step in range(40):            # line 3: twenty shapes, then repeats
                op(f"shape{step % 20}")
                op("update")
    """)
    namespace = {"op": fake.op}
    exec(loops.compile_marked(source, "s.py", display_file="s.py"), namespace)
    namespace["main"]()
    assert status_of(fake, ":3") is regions.Status.REGION
    assert regions.RegionPolicy.PROBE_MISSES < 19 < regions.RegionPolicy.PROBE_MISSES_OUTERMOST


def test_policy_picks_the_step_loop(fake):
    """Layers loop in forward: transparent; step loop: the region; epoch loop: container."""
    pytest.importorskip("torch")
    source = textwrap.dedent("""
        import torch
        class Stack(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.layers = torch.nn.ModuleList(torch.nn.Identity() for _ in range(2))
            def forward(self, x):
                for i, layer in enumerate(self.layers):     # line 8
                    op("same-op")                          # structurally alike layers
                    x = layer(x)
                return x
        def main():
            model = Stack()
            for epoch in range(3):                         # line 14
                for step in range(6):                      # line 15
                    model(torch.ones(1))
                    op("backward")
                    if epoch == 0 and step == 0:
                        op("momentum-init")
                    op("sgd")
    """)
    namespace = {"op": fake.op}
    exec(loops.compile_marked(source, "m.py", display_file="m.py"), namespace)
    namespace["main"]()
    assert status_of(fake, ":8") is regions.Status.TRANSPARENT
    assert status_of(fake, ":15") is regions.Status.REGION
    assert status_of(fake, ":14") is regions.Status.CONTAINER
    assert "nn.Module forward" in next(s.reason for s in fake.policy.sites.values()
                                       if s.name.endswith(":8"))
    step_key = next(s.key for s in fake.policy.sites.values() if s.name.endswith(":15"))
    assert len([e for e in fake.events if e == ("end", step_key)]) >= 15
    assert fake.current is None


def run_step_with_clamping_loop(fake, steps, forward, kernels_s):
    """A step loop (line 4): the op `forward` (source text), `kernels_s` of work, then a loop
    over three parameters (line 7) clamping each."""
    source = textwrap.dedent(f"""
        import time
        def main():
            for step in range({steps}):                    # line 4
                op({forward})
                time.sleep({kernels_s})                    # the step's kernels
                for p in range(3):                         # line 7
                    op(f"clamp-{{p}}")
    """)
    namespace = {"op": fake.op}
    exec(loops.compile_marked(source, "m.py", display_file="m.py"), namespace)
    namespace["main"]()


def test_small_inner_loop_does_not_take_the_step_loops_region(fake, monkeypatch):
    """A loop clamping each parameter after the step repeats too, and is accepted first; but
    its runs take a small share of the step's time: it becomes transparent, and the step
    loop the region (before, the step loop became its container and ran eagerly)."""
    monkeypatch.setenv("TERRA_SPEED_CHECK", "0")  # the fake engine's co-execution is no faster
    run_step_with_clamping_loop(fake, steps=20, forward='"forward"', kernels_s=0.004)
    inner = next(s for s in fake.policy.sites.values() if s.name.endswith(":7"))
    assert inner.status is regions.Status.TRANSPARENT
    assert "small part" in inner.reason
    assert status_of(fake, ":4") is regions.Status.REGION
    step_key = next(s.key for s in fake.policy.sites.values() if s.name.endswith(":4"))
    ends = [e for e in fake.events if e == ("end", step_key)]
    assert len(ends) >= 10
    # Its iterations hold the clamps too: one graph for the whole step.
    assert any("clamp-2" in trace for trace in fake.graphs[fake.keys[step_key]])
    assert fake.current is None


def test_small_inner_loop_is_probed_again_when_the_enclosing_loop_never_repeats(fake,
                                                                                monkeypatch):
    """The step loop the clamping loop gave way to never repeats (a new op every step): once
    it is given up on, the clamping loop is probed again and becomes the region after all."""
    monkeypatch.setenv("TERRA_SPEED_CHECK", "0")  # the fake engine's co-execution is no faster
    run_step_with_clamping_loop(fake, steps=260, forward='f"forward-{step}"', kernels_s=0.001)
    outer = next(s for s in fake.policy.sites.values() if s.name.endswith(":4"))
    inner = next(s for s in fake.policy.sites.values() if s.name.endswith(":7"))
    assert outer.status is regions.Status.TRANSPARENT, outer.reason
    assert inner.status is regions.Status.REGION, inner.reason
    inner_ends = [i for i, e in enumerate(fake.events) if e == ("end", inner.key)]
    outer_events = [i for i, e in enumerate(fake.events) if e[1:] == (outer.key,)]
    assert inner_ends[-1] > outer_events[-1]  # co-executed again after the step loop's end
    assert fake.current is None


def test_forked_child_never_touches_the_engine(fake):
    """DataLoader workers are forked: loops there must run without the parent's engine."""
    import os

    source = "def main(op):\n    for i in range(3):\n        op('x')\n"
    namespace = {}
    exec(loops.compile_marked(source, "f.py"), namespace)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: the fork hook ran; the fake must see no call
        fake.events.clear()
        try:
            namespace["main"](fake.op)
            os.write(write, b"ok" if not fake.events else b"touched")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 16) == b"ok"
    namespace["main"](fake.op)
    assert fake.events, "the parent's loops must still reach the engine"


class FakeClock:
    """time.perf_counter for the policy: ops cost `traced` seconds while their region is
    traced, `coexecuted` once the fake engine co-executes it (it repeated), and `plain`
    outside any iteration; a sync (the GraphRunner catching up) costs `sync`."""

    def __init__(self, engine, traced, coexecuted, plain=0.0, sync=0.0):
        self.engine, self.traced, self.coexecuted, self.plain = engine, traced, coexecuted, plain
        self.now = 0.0
        self.syncs = 0
        sync_cost = sync

        def catch_up():
            self.syncs += 1
            self.now += sync_cost

        engine.sync = engine.quiesce = catch_up

    def perf_counter(self):
        return self.now

    def op(self, tag):
        current = self.engine.current
        if current is None:
            self.now += self.plain
        else:
            region_id = current[0]
            self.now += self.coexecuted if self.engine.repeated.get(region_id) else self.traced
        self.engine.op(tag)


SPEED_CASES = {
    # name: (seconds per op traced, co-executed, plain; the sync's seconds; slower?)
    "fetch-bound": (1e-3, 5e-3, 1e-3, 0.0, True),
    "faster": (1e-3, 0.5e-3, 1e-3, 0.0, False),
    # Python's side is fast, but the GraphRunner lags: the sync holds most of the time.
    "runner-bound": (1e-3, 0.5e-3, 1e-3, 64e-3, True),
}


@pytest.mark.parametrize("case", sorted(SPEED_CASES))
def test_region_slower_co_executed_than_plain_runs_plainly(fake, monkeypatch, case):
    """After its first co-executed iterations and a sync, a region runs a few iterations
    plainly; slower co-executed than those, it runs plainly from then on."""
    traced, coexecuted, plain, sync, slower = SPEED_CASES[case]
    clock = FakeClock(fake, traced, coexecuted, plain, sync)
    monkeypatch.setattr(regions, "time", clock)
    source = textwrap.dedent("""
        import itertools
        counter = itertools.count()
        def main():
            for step in range(30):                 # line 5: never repeats on its own
                op(f"forward{next(counter)}")
                for scale in range(2):             # line 7: a container of line 8
                    for box in range(20):          # line 8: repeats
                        op("box")
                        op("item")
    """)
    namespace = {"op": clock.op}
    exec(loops.compile_marked(source, "s.py", display_file="s.py"), namespace)
    namespace["main"]()
    policy = regions.RegionPolicy
    inner, outer = status_of(fake, ":8"), status_of(fake, ":5")
    assert status_of(fake, ":7") is regions.Status.CONTAINER
    site = next(s for s in fake.policy.sites.values() if s.name.endswith(":8"))
    assert site.timings["coexecuting"][1] >= policy.SPEED_CHECK_AFTER
    assert site.timings["window"][1] == policy.SPEED_CHECK_AFTER - policy.SPEED_CHECK_WARMUP
    assert site.timings["plain"][1] == policy.PLAIN_SAMPLES - policy.PLAIN_WARMUP
    assert clock.syncs == 2  # one opens the timed window, one closes it
    # The plain samples never reached the engine: its iterations of the box loop are the
    # traced ones (2) and the co-executed ones, and more of those only when it stayed a region.
    ended = [e for e in fake.events if e == ("end", site.key)]
    if slower:
        assert inner is regions.Status.TRANSPARENT
        plain_ms = 2e3 * plain
        coexec_ms = 2e3 * coexecuted + 1e3 * sync / (policy.SPEED_CHECK_AFTER -
                                                    policy.SPEED_CHECK_WARMUP)
        assert f"took {coexec_ms:.3g} ms, plain ones {plain_ms:.3g} ms" in site.reason
        # The step loop was still probed: its first iteration had not ended yet.
        assert outer is regions.Status.CONTAINER
        assert "co-executed slower than it ran plainly" in next(
            s.reason for s in fake.policy.sites.values() if s.name.endswith(":5"))
        assert len(ended) == 2 + policy.SPEED_CHECK_AFTER
    else:
        assert inner is regions.Status.REGION
        assert len(ended) == 30 * 2 * 20 - policy.PLAIN_SAMPLES
    assert fake.policy.open_runs == [] and fake.current is None and fake.policy.plain_run is None


def test_plain_sample_cut_short_by_an_exception_is_not_counted(fake, monkeypatch):
    """An exception in a plain sample leaves no sample behind and no plain run open."""
    clock = FakeClock(fake, traced=1e-3, coexecuted=5e-3, plain=1e-3)
    monkeypatch.setattr(regions, "time", clock)
    source = textwrap.dedent("""
        def main(fail_at):
            for box in range(100):
                op("box")
                if box == fail_at:
                    raise KeyError(box)
    """)
    namespace = {"op": clock.op}
    exec(loops.compile_marked(source, "s.py", display_file="s.py"), namespace)
    policy = regions.RegionPolicy
    first_sample = 2 + policy.SPEED_CHECK_AFTER  # traced, then co-executed iterations
    with pytest.raises(KeyError):  # the first sample after the warm-up ones raises
        namespace["main"](first_sample + policy.PLAIN_WARMUP)
    site = next(iter(fake.policy.sites.values()))
    assert site.plain_left == policy.PLAIN_SAMPLES - policy.PLAIN_WARMUP - 1
    assert "plain" not in site.timings and fake.policy.plain_run is None
    namespace["main"](-1)  # the remaining samples, then the check
    assert site.timings["plain"][1] == policy.PLAIN_SAMPLES - policy.PLAIN_WARMUP - 1
    assert site.status is regions.Status.TRANSPARENT


def test_interrupt_entering_end_of_a_plain_sample_leaves_no_sample_open(fake, monkeypatch):
    """A KeyboardInterrupt raised as end() is entered (Python checks for signals there),
    after the body ran, skips both abort() and end(): leaving the loop closes the sample,
    and the next run of the loop is judged as before (a test of the kernel's interrupt
    found every later loop running plainly)."""
    clock = FakeClock(fake, traced=1e-3, coexecuted=5e-3, plain=1e-3)
    monkeypatch.setattr(regions, "time", clock)
    interrupt_at_sample = [2]
    original_end = regions.LoopRun.end

    def end(self):
        if self.plain_started:
            interrupt_at_sample[0] -= 1
            if interrupt_at_sample[0] == 0:
                raise KeyboardInterrupt
        original_end(self)

    monkeypatch.setattr(regions.LoopRun, "end", end)
    source = "def main():\n    for box in range(100):\n        op('box')\n"
    namespace = {"op": clock.op}
    exec(loops.compile_marked(source, "s.py", display_file="s.py"), namespace)
    with pytest.raises(KeyboardInterrupt):
        namespace["main"]()
    site = next(iter(fake.policy.sites.values()))
    assert fake.policy.plain_run is None
    namespace["main"]()  # the remaining samples, then the check: as without the interrupt
    assert site.status is regions.Status.TRANSPARENT


def test_interrupt_right_after_the_engine_began_an_iteration_aborts_it(fake):
    """A KeyboardInterrupt is raised after whichever call returns: one raised as the
    engine's begin_iteration returns, before the body's try, must still abort the
    iteration the engine opened."""
    original_begin, begins = fake.begin_iteration, [0]

    def begin_then_interrupt(region_id):
        original_begin(region_id)
        begins[0] += 1
        if begins[0] == 2:
            raise KeyboardInterrupt

    fake.begin_iteration = begin_then_interrupt
    source = "def main():\n    for step in range(10):\n        op('x')\n"
    namespace = {"op": fake.op}
    exec(loops.compile_marked(source, "s.py", display_file="s.py"), namespace)
    with pytest.raises(KeyboardInterrupt):
        namespace["main"]()
    key = next(iter(fake.policy.sites))
    assert fake.events[-1] == ("abort", key)
    assert fake.current is None and fake.policy.active is None
    namespace["main"]()  # no iteration left open: the loop runs and is judged again
    assert status_of(fake, ":2") is regions.Status.REGION


def test_speed_check_can_be_switched_off(fake, monkeypatch):
    """TERRA_SPEED_CHECK=0 (the corpus tests): a slow co-executed loop stays a region."""
    monkeypatch.setenv("TERRA_SPEED_CHECK", "0")
    clock = FakeClock(fake, traced=1e-3, coexecuted=5e-3, plain=1e-3)
    monkeypatch.setattr(regions, "time", clock)
    source = "def main():\n    for box in range(100):\n        op('box')\n"
    namespace = {"op": clock.op}
    exec(loops.compile_marked(source, "s.py", display_file="s.py"), namespace)
    namespace["main"]()
    assert status_of(fake, ":2") is regions.Status.REGION
    timings = next(iter(fake.policy.sites.values())).timings
    assert clock.syncs == 0 and "plain" not in timings and "window" not in timings
