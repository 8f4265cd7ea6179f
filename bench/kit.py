"""What a benchmark program needs from the suite, and nothing more.

Each program in `bench/programs/` is an ordinary training script. It uses this
module for three things only, so that its own code stays what a researcher
would write:

* `program_arguments()` — the common command line (`--iters`, `--system`,
  `--timing-file`, `--seed`, `--explain`);
* `prepare_model()` — applies the system under test to the model: eager (the
  model unchanged), `torch.compile` (default or `fullgraph=True`) or TorchScript
  (`torch.jit.script`, falling back to `torch.jit.trace` when scripting fails);
* `IterationClock` — wall time per training iteration, written as JSON to the
  `--timing-file` the harness reads.

The Terra column runs the program with `--system eager` under
`python -m terra run`: nothing here knows about Terra. Nothing here prints to
stdout; the harness compares the programs' stdout across systems.
"""

import argparse
import copy
import json
import random
import sys
import time

import numpy as np
import torch

SYSTEMS = ("eager", "compile", "compile-fullgraph", "torchscript")


def program_arguments(description, default_iters):
    """The command line every program accepts; the program may add its own options.

    `description` is the program's docstring (its first line is used; None is fine,
    as in a notebook, where a cell's module has no docstring of its own).
    """
    summary = description.strip().splitlines()[0] if description and description.strip() else None
    parser = argparse.ArgumentParser(description=summary)
    parser.add_argument("--iters", type=int, default=default_iters, help="training iterations")
    parser.add_argument("--system", choices=SYSTEMS, default="eager", help="how the model runs")
    parser.add_argument("--seed", type=int, default=0, help="seed of torch, numpy and random")
    parser.add_argument("--timing-file", default=None, help="write per-iteration times (JSON) here")
    parser.add_argument(
        "--explain", action="store_true", help="with --system compile: record torch._dynamo.explain"
    )
    return parser


def seed_everything(seed):
    """Seeds the three random streams a program may draw from."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class _Report:
    """The one piece of mutable state of this module: what the timing file will hold."""

    def __init__(self):
        self.data = {"system": "eager", "prepare_s": 0.0, "prepare": []}


REPORT = _Report()


def prepare_model(model, args, example_inputs):
    """Returns `model` as the system named by `args.system` runs it.

    `example_inputs` (a tuple) is one training batch of the model's forward; it is
    used by torch.jit.trace and torch._dynamo.explain only, without changing the
    model's parameters, buffers or any random stream. The time spent here counts
    as warm-up (TorchScript compiles here; torch.compile compiles on first call).
    """
    REPORT.data["system"] = args.system
    started = time.perf_counter()
    if args.system == "eager":
        prepared = model
    elif args.system in ("compile", "compile-fullgraph"):
        if args.explain:
            _record_explain(model, example_inputs)
            started = time.perf_counter()
        prepared = torch.compile(model, fullgraph=args.system == "compile-fullgraph")
    else:
        prepared = _torchscript(model, example_inputs)
    REPORT.data["prepare_s"] += time.perf_counter() - started
    return prepared


def _torchscript(model, example_inputs):
    """torch.jit.script, else torch.jit.trace; records which one and why."""
    name = type(model).__name__
    try:
        scripted = torch.jit.script(model)
        REPORT.data["prepare"].append({"model": name, "method": "script"})
        return scripted
    except Exception as error:  # scripting rejects Python it cannot compile
        reason = f"{type(error).__name__}: {_first_line(error)}"
    with _side_effects_undone(model):
        traced = torch.jit.trace(model, example_inputs, check_trace=False)
    REPORT.data["prepare"].append({"model": name, "method": "trace", "script_error": reason})
    return traced


def _record_explain(model, example_inputs):
    """Runs torch._dynamo.explain on the model's forward and stores the summary."""
    import torch._dynamo

    started = time.perf_counter()
    with _side_effects_undone(model):
        try:
            explanation = torch._dynamo.explain(model)(*example_inputs)
            reasons = [_break_reason(b) for b in explanation.break_reasons]
            summary = {
                "model": type(model).__name__,
                "graph_count": explanation.graph_count,
                "graph_break_count": explanation.graph_break_count,
                "break_reasons": _count_reasons(reasons),
            }
        except Exception as error:
            summary = {"model": type(model).__name__, "error": f"{type(error).__name__}: {_first_line(error)}"}
    torch._dynamo.reset()
    from torch._dynamo.utils import counters

    counters.clear()  # the run's own graph-break counters start from zero
    summary["explain_s"] = time.perf_counter() - started
    REPORT.data.setdefault("explain", []).append(summary)


class _side_effects_undone:
    """Restores parameters, buffers and every random stream after a trial forward."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.rng = (torch.get_rng_state(), np.random.get_state(), random.getstate())
        self.numpy_rngs = _numpy_generators(self.model)
        self.numpy_states = copy.deepcopy([getattr(m, a) for m, a in self.numpy_rngs])
        self.training = [m.training for m in self.model.modules()]
        return self

    def __exit__(self, *exc):
        with torch.no_grad():
            self.model.load_state_dict(self.state)
        torch.set_rng_state(self.rng[0])
        np.random.set_state(self.rng[1])
        random.setstate(self.rng[2])
        for (module, attr), saved in zip(self.numpy_rngs, self.numpy_states):
            setattr(module, attr, saved)
        for module, training in zip(self.model.modules(), self.training):
            module.training = training
        return False


def _numpy_generators(model):
    """(module, attribute) of every numpy random generator a module holds."""
    kinds = (np.random.Generator, np.random.RandomState)
    return [(m, a) for m in model.modules() for a, v in vars(m).items() if isinstance(v, kinds)]


def _break_reason(graph_break):
    reason = getattr(graph_break, "reason", graph_break)
    return _first_line(reason)


def _count_reasons(reasons):
    counts = {}
    for reason in reasons:
        counts[reason] = counts.get(reason, 0) + 1
    return [{"reason": r, "count": c} for r, c in sorted(counts.items(), key=lambda rc: -rc[1])]


def _first_line(text):
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0][:300] if lines else ""


class IterationClock:
    """Wall time of each training iteration: call `tick()` once at the end of each.

    The first interval runs from the clock's creation, so create it right before
    the training loop. `finish()` writes the timing file (when one was asked for).
    """

    def __init__(self, args):
        self.path = args.timing_file
        self.times = []
        self.last = time.perf_counter()

    def tick(self):
        """Closes the current iteration's interval and opens the next one."""
        now = time.perf_counter()
        self.times.append(now - self.last)
        self.last = now

    def finish(self):
        """Writes iteration times, preparation time and compiler diagnostics."""
        if not self.path:
            return
        data = dict(REPORT.data, iter_s=self.times)
        if REPORT.data["system"].startswith("compile"):
            data["dynamo"] = _dynamo_counters()
        with open(self.path, "w") as f:
            json.dump(data, f)


def _dynamo_counters():
    """Graph breaks and graphs torch.compile saw during the run itself."""
    if "torch._dynamo" not in sys.modules:
        return {}
    from torch._dynamo.utils import counters

    breaks = counters.get("graph_break", {})
    return {
        "graph_breaks": sum(breaks.values()),
        "break_reasons": [
            {"reason": _first_line(r), "count": c} for r, c in sorted(breaks.items(), key=lambda rc: -rc[1])
        ],
        "unique_graphs": counters.get("stats", {}).get("unique_graphs", 0),
    }
