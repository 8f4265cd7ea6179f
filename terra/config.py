"""Every TERRA_* knob in one place: name, default, type and help (docs/configuration.md).

Values come from the environment when the package is imported; `get(name)` returns the
parsed value, `engine_settings()` what the C++ engine takes. The table in
docs/configuration.md is this one, by hand; `python -m terra.config` prints it.
"""

from __future__ import annotations

import dataclasses
import os
import sys


@dataclasses.dataclass(frozen=True)
class Knob:
    """One environment variable: its name, type, default and a one-line help."""

    name: str
    kind: type
    default: object
    help: str
    engine_key: str | None = None  # the matching key of the C++ EngineConfig, if any


KNOBS: tuple[Knob, ...] = (
    Knob("TERRA_DISABLE", bool, False,
         "1: co-execution off from the start (programs run eagerly, as plain Python)",
         None),
    Knob("TERRA_DEBUG", int, 0,
         "diagnostics on stderr: 1 fallbacks and phase changes, 2 every traced op, "
         "3 every intercepted op", "debug"),
    Knob("TERRA_DEBUG_POISON", bool, False,
         "1: placeholder memory is filled with 0xFF bytes (NaN; -1 for ints) until the "
         "GraphRunner writes it, so a read that missed its fetch shows", "poison"),
    Knob("TERRA_WARMUP", int, 2,
         "iterations a region is traced at least; co-execution starts after an "
         "iteration whose trace the graph already contained", "warmup_iterations"),
    Knob("TERRA_MAX_GRAPH_NODES", int, 100000,
         "a region whose graph grows beyond this many nodes is disabled (runs eagerly)",
         "max_graph_nodes"),
    Knob("TERRA_MAX_FALLBACKS_IN_ROW", int, 3,
         "after this many co-executed iterations in a row that fell back, the region "
         "returns to tracing until an iteration repeats", "max_fallbacks_in_row"),
    Knob("TERRA_MAX_QUEUED", int, 512,
         "backpressure: the program waits when it is this many ops ahead of the "
         "GraphRunner (0: no bound but the runner's ring of 1024 ops)", "max_queued"),
    Knob("TERRA_MAX_QUEUED_MS", int, 200,
         "backpressure: the program waits when the queued ops would take the GraphRunner "
         "about this many ms (estimated from recent op times; 0: no bound); also bounds "
         "how long a KeyboardInterrupt waits for queued work", "max_queued_ms"),
    Knob("TERRA_REPLAY_BACKWARD", bool, True,
         "0: every backward() in co-execution runs autograd's engine on the Python thread; "
         "1: one recorded once at a graph position is replayed from the recording when the "
         "same autograd graph comes again (no hooks, no Python functions in it)",
         "replay_backward"),
    Knob("TERRA_SPEED_CHECK", bool, True,
         "0: a loop stays a region even where its co-executed iterations are slower than "
         "plain ones (the region policy's speed check, which runs a few iterations plainly "
         "after the first 64 co-executed ones; the corpus tests set 0, since they test "
         "co-execution itself)", None),
    Knob("TERRA_HOOKS", bool, True,
         "0: do not install the Python fetch hooks (numpy, tolist, repr, data_ptr, "
         "torch.save, RNG state, torch.default_generator...) nor adopt new threading "
         "threads; for debugging only, values may then be unfilled", None),
    Knob("TERRA_SPEEDUP_VIEW", bool, True,
         "0: the Terra kernel shows no live speedup chart below cells whose loops "
         "run as regions", None),
    Knob("TERRA_STATS", str, "",
         "path: `python -m terra run` writes the stats as JSON there at exit", None),
    Knob("TERRA_TEST_KERNEL", str, "terra",
         "tests only: the kernel the notebook and browser tests run under", None),
    Knob("TERRA_TEST_DEVICE", str, "cpu",
         "tests only: the device the corpus programs run on (the cuda-marked corpus tests "
         "set `cuda`)", None),
)

_BY_NAME = {knob.name: knob for knob in KNOBS}


def _parse(knob: Knob, text: str | None) -> object:
    """The value of `knob` for environment text `text` (None or "": the default)."""
    if text is None or text.strip() == "":
        return knob.default
    text = text.strip()
    try:
        if knob.kind is bool:
            return text.lower() not in ("0", "false", "no", "off")
        if knob.kind is int:
            return int(text)
    except ValueError:
        import warnings  # noqa: PLC0415 (only on bad input)

        warnings.warn(f"terra: {knob.name}={text!r} is not a valid {knob.kind.__name__}; "
                      f"using {knob.default!r}", RuntimeWarning, stacklevel=3)
        return knob.default
    return text


def get(name: str) -> object:
    """The value of knob `name` from the environment now (default when unset)."""
    knob = _BY_NAME[name]
    return _parse(knob, os.environ.get(name))


def engine_settings() -> dict:
    """The C++ engine's settings as the environment gives them (terra._C Engine.configure)."""
    settings = {knob.engine_key: get(knob.name) for knob in KNOBS if knob.engine_key}
    settings["enabled"] = not get("TERRA_DISABLE")
    return settings


def table() -> str:
    """The knobs as a Markdown table (the one in docs/configuration.md)."""
    lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for knob in KNOBS:
        default = knob.default
        if knob.kind is bool:
            default = "1" if default else "0"
        shown = f"`{default}`" if default != "" else "(unset)"
        lines.append(f"| `{knob.name}` | {shown} | {knob.help} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(table() + "\n")
