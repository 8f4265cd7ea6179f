"""`python -m terra run SCRIPT [ARGS]`: runs a script exactly as `python SCRIPT` would.

Same `sys.argv`, `sys.path[0]` (the script's directory, so sibling modules import),
a fresh `__main__` module (so `if __name__ == "__main__"` and pickling of classes
defined in the script work), same stdout, same exit code: `sys.exit(n)` exits with
n, an uncaught exception prints its traceback (without Terra's frames) on stderr and
exits 1, an uncaught KeyboardInterrupt ends the process by SIGINT as Python does.

The only difference: the script's loops (and those of the functions and classes it
defines) are marked (`terra.loops`) and the region policy picks the regions that are
co-executed. `TERRA_STATS=path.json` writes `terra.stats()` as JSON at exit; a path
that cannot be written gives a warning, never a failed program. `TERRA_DISABLE=1`
runs the script with co-execution off.
"""

from __future__ import annotations

import atexit
import builtins
import json
import os
import signal
import sys
import types
import warnings
from importlib.machinery import SourceFileLoader

from terra import _engine_api, config, loops, regions

USAGE = "usage: python -m terra run SCRIPT [ARGS...]"


class _Exit:
    """What the at-exit step must do (set once the script ended)."""

    interrupted = False


def write_stats(path: str) -> None:
    """Writes the engine's stats as JSON to `path`; failures become a warning."""
    try:
        data = _engine_api.stats()
        with open(path, "w", encoding="utf-8") as stream:
            json.dump(data, stream, indent=1, sort_keys=True, default=str)
            stream.write("\n")
    except Exception as error:  # a broken path must not fail the user's program
        warnings.warn(f"terra: could not write TERRA_STATS to {path!r}: {error}",
                      RuntimeWarning, stacklevel=1)


def _at_exit(stats_path: str | None) -> None:
    """Registered before the script runs, so it runs after the script's own handlers."""
    engine = _engine_api.get()
    if engine is not None:
        try:
            engine.sync()
        except Exception:  # the program already ended; stats are still worth writing
            pass
    if stats_path:
        write_stats(stats_path)
    if _Exit.interrupted:
        _die_by_sigint()


def _die_by_sigint() -> None:
    """Ends the process the way CPython does after an uncaught KeyboardInterrupt."""
    sys.stdout.flush()
    sys.stderr.flush()
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGINT)


def _main_module(path: str) -> types.ModuleType:
    """A fresh `__main__` with the attributes `python SCRIPT` gives it."""
    module = types.ModuleType("__main__")
    module.__file__ = path
    module.__cached__ = None
    module.__package__ = None
    module.__spec__ = None
    module.__loader__ = SourceFileLoader("__main__", path)
    module.__builtins__ = builtins
    module.__annotations__ = {}  # CPython's initial __main__ has it
    return module


def _without_own_frames(tb: types.TracebackType | None, script: str):
    """Drops the traceback entries of Terra's own frames before the script's code."""
    while tb is not None and tb.tb_frame.f_code.co_filename != script:
        tb = tb.tb_next
    return tb


def _configure_engine() -> None:
    """The engine reads TERRA_DISABLE itself (terra.config); without one, say so once."""
    if _engine_api.get() is None:
        _engine_api.warn_unavailable()


def run(script: str, args: list[str]) -> int:
    """Runs `script` as __main__ with `args`; returns the exit code (or raises SystemExit)."""
    path = os.path.abspath(script)
    try:
        with open(path, "rb") as stream:
            source = stream.read()
    except OSError as error:
        print(f"{sys.executable}: can't open file {script!r}: [Errno {error.errno}] "
              f"{error.strerror}", file=sys.stderr)
        return 2
    code = loops.compile_marked(source, path, key_prefix=path,
                                display_file=os.path.basename(path))
    regions.install()
    _configure_engine()
    atexit.register(_at_exit, config.get("TERRA_STATS") or None)

    module = _main_module(path)
    sys.modules["__main__"] = module
    sys.argv[:] = [script, *args]
    sys.path[0] = os.path.dirname(os.path.realpath(path))  # symlinks resolved, as CPython does
    try:
        exec(code, module.__dict__)
        # Work still queued may fail (a kernel error on values that no check foresaw): that
        # error ends the program as the op's own would have, not silently at exit.
        engine = _engine_api.get()
        if engine is not None:
            engine.sync()
    except SystemExit:
        raise
    except BaseException as error:  # noqa: BLE001 (report exactly as Python would)
        _Exit.interrupted = isinstance(error, KeyboardInterrupt)
        trimmed = _without_own_frames(error.__traceback__, path)
        sys.excepthook(type(error), error.with_traceback(trimmed), trimmed)
        return 1
    return 0


def main(argv: list[str]) -> int:
    """Entry point of `python -m terra`: argv without the program name."""
    if len(argv) < 2 or argv[0] != "run":
        print(USAGE, file=sys.stderr)
        return 2
    return run(argv[1], argv[2:])
