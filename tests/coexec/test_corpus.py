"""The differential corpus (STYLE.md §8): every script in corpus/ runs as plain
`python SCRIPT` and under `python -m terra run SCRIPT`; a program passes only when

- both exit with the same code (0) and stdout is byte-identical (per-iteration
  values and a sha256 checksum line of the final parameters and buffers), and
- the TERRA_STATS file shows that co-execution happened: `iterations_coexecuted`
  reaches the program's minimum (half its step iterations for programs that repeat
  without divergence; see `CORPUS` for each exception and why). A program that
  silently falls back to eager every iteration fails.

Peak memory (DESIGN §5, issue 3): each child's peak RSS comes from the kernel
(`os.wait4` on its pid, `ru_maxrss`), measured from outside the program; the Terra run
must stay within `PEAK_RSS_BOUND` times the plain run's. The table is left in
artifacts/corpus_peak_rss.json.

Devices (STYLE.md §9): the programs take their device from `corpus_common.device()`
(TERRA_TEST_DEVICE, default cpu). Each test runs on `cpu` and on `cuda`; the cuda
cases carry the `cuda` marker and are skipped without a GPU (tests/conftest.py).

All runs of one device happen once per module in a thread pool of subprocesses (two at
a time on 2 cores). Measured on CPU (33 programs): 3.4 minutes of CPU in all (importing
torch is about half of it), 4.7 minutes of wall time on a 2-core machine whose load
average was 2.8-4.8.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

CORPUS_DIR = pathlib.Path(__file__).resolve().parent / "corpus"
REPO_ROOT = CORPUS_DIR.parents[2]
TIMEOUT_S = 300
# Terra's peak RSS may be at most this many times eager's (DESIGN §5, issue 3).
PEAK_RSS_BOUND = 1.2
DEVICES = ("cpu", pytest.param("cuda", marks=pytest.mark.cuda))

# DESIGN §6, one id per hard case.
HARD_CASES = (
    "numpy_random_math", "item_branch", "while_tensor", "break_continue_return",
    "recursion", "generator_batches", "last_batch_smaller", "variable_seq_len", "backward",
    "no_grad_eval", "dropout_train_eval", "batchnorm", "clip_grad_norm", "custom_function",
    "hooks", "sgd_momentum", "adam_scheduler", "inplace_views_slicing", "randn_in_loop",
    "explicit_generator", "user_exception", "data_dependent_shapes", "print_tensor",
    "int_results", "two_optimizers", "state_dict_save_load", "keyboard_interrupt",
    # Beyond DESIGN §6, found by programs written to break the engine (docs/architecture.md):
    # a kernel that raises on some values, caught; memory numpy writes past the dispatcher;
    # torch.compile'd code, whose kernels read memory past the dispatcher; other Python
    # threads reading the loop's tensors.
    "kernel_error_caught", "numpy_shared_memory", "torch_compile", "other_threads",
)


@dataclasses.dataclass(frozen=True)
class Program:
    """What a corpus script covers and how much co-execution it must show.

    kind: "repeating" (repeats without divergence: min = half the steps),
    "branching" (a few stable paths, each co-executes once seen: min = a quarter),
    "divergent" (its point is to diverge: min = 1). `why` justifies every
    kind but "repeating". `region_line`: the loop that must be the region.
    `known_limit`: an engine limit that can keep this program below its co-execution
    minimum; output equality is still required, the shortfall is reported as xfail.
    """

    steps: int
    kind: str
    cases: tuple[str, ...]
    why: str = ""
    region_line: int | None = None
    known_limit: str = ""

    @property
    def min_coexecuted(self) -> int:
        return {"repeating": self.steps // 2, "branching": self.steps // 4,
                "divergent": 1}[self.kind]


CORPUS = {
    "c01_mlp_sgd.py": Program(30, "repeating", ("backward",)),
    "c02_sgd_momentum.py": Program(32, "repeating", ("sgd_momentum", "backward")),
    "c03_adamw_steplr.py": Program(30, "repeating", ("adam_scheduler",)),
    "c04_adam_cosine.py": Program(30, "repeating", ("adam_scheduler",)),
    "c05_numpy_random_math.py": Program(30, "repeating", ("numpy_random_math", "int_results")),
    "c06_item_branch.py": Program(
        40, "branching", ("item_branch",),
        "`if loss.item() > c` and `step % 3` choose among four paths"),
    "c07_while_tensor.py": Program(
        25, "divergent", ("while_tensor",),
        "the while loop's trip count follows the weights' norm"),
    "c08_break_continue.py": Program(34, "repeating", ("break_continue_return",)),
    "c09_early_return.py": Program(21, "repeating", ("break_continue_return",)),
    "c10_recursion_tree.py": Program(
        24, "branching", ("recursion",), "three tree shapes: one graph path per tree"),
    "c11_generator_batches.py": Program(
        20, "branching", ("generator_batches", "last_batch_smaller", "sgd_momentum"),
        "the smaller last batch of each epoch is another path"),
    "c12_variable_seq_len.py": Program(
        24, "branching", ("variable_seq_len",), "three sequence lengths: three paths"),
    "c13_no_grad_eval.py": Program(
        30, "branching", ("no_grad_eval",), "every 5th step adds an evaluation path"),
    "c14_dropout_train_eval.py": Program(
        30, "branching", ("dropout_train_eval", "no_grad_eval", "sgd_momentum"),
        "every 6th step adds an eval()-mode evaluation path"),
    "c15_batchnorm.py": Program(
        30, "branching", ("batchnorm", "int_results"),
        "three batch offsets; every 10th step adds an eval path"),
    "c16_clip_grad.py": Program(25, "repeating", ("clip_grad_norm",)),
    "c17_custom_function.py": Program(30, "repeating", ("custom_function",)),
    "c18_hooks.py": Program(25, "repeating", ("hooks",)),
    "c19_inplace_views.py": Program(
        30, "branching", ("inplace_views_slicing",),
        "memory[step % 10] selects another row (an int argument) every step"),
    "c20_randn_in_loop.py": Program(30, "repeating", ("randn_in_loop", "adam_scheduler")),
    "c21_explicit_generator.py": Program(30, "repeating", ("explicit_generator",)),
    "c22_user_exception.py": Program(30, "repeating", ("user_exception", "sgd_momentum")),
    "c23_data_dependent_shapes.py": Program(
        25, "divergent", ("data_dependent_shapes",),
        "the number of positive entries (shapes after the mask) changes with the weights"),
    "c24_print_tensor.py": Program(20, "repeating", ("print_tensor",)),
    "c25_int_results.py": Program(30, "repeating", ("int_results",)),
    "c26_gan.py": Program(30, "repeating", ("two_optimizers", "randn_in_loop")),
    "c27_state_dict_save_load.py": Program(
        29, "branching", ("state_dict_save_load", "adam_scheduler"),
        "the loaded copies are new state: the third training run starts a new path"),
    "c28_keyboard_interrupt.py": Program(30, "repeating", ("keyboard_interrupt",)),
    "c29_small_cnn.py": Program(20, "repeating", ("backward", "sgd_momentum")),
    "c30_small_lstm.py": Program(20, "repeating", ("backward",)),
    "c31_layer_loop_in_forward.py": Program(24, "repeating", ("backward",), region_line=33),
    "c32_python_loops_in_step.py": Program(20, "repeating", ("int_results", "numpy_random_math")),
    "c33_large_activations.py": Program(12, "repeating", ("backward", "sgd_momentum")),
    "c34_kernel_errors.py": Program(
        40, "branching", ("kernel_error_caught", "sgd_momentum"),
        "a caught error ends a step early or takes a handler's path (four kinds of error)"),
    "c35_numpy_shared_memory.py": Program(30, "repeating", ("numpy_shared_memory",)),
    "c36_torch_compile.py": Program(20, "repeating", ("torch_compile", "sgd_momentum")),
    "c37_other_threads.py": Program(30, "repeating", ("other_threads", "sgd_momentum")),
    "c38_exception_in_backward.py": Program(
        25, "branching", ("user_exception", "hooks"),
        "a hook raising inside backward() every 5th and 7th step ends those steps early"),
    "c39_weight_clipping_loop.py": Program(30, "repeating", ("backward",), region_line=20),
}


@dataclasses.dataclass
class Outcome:
    """The result of one script run."""

    returncode: int
    stdout: bytes
    stderr: str
    stats: dict | None
    stats_error: str = ""
    peak_rss_mib: float = 0.0


def run_measured(command: list, cwd: pathlib.Path, env: dict, timeout: float):
    """Like subprocess.run(capture_output=True), plus the child's own peak RSS.

    Returns (returncode, stdout, stderr, peak RSS in MiB). The child is reaped with
    os.wait4 on its pid, whose rusage is that process's alone (RUSAGE_CHILDREN would mix
    the runs of the thread pool). A child still writing after `timeout` seconds is killed
    (it is not reaped yet, so its pid cannot have been reused) and gets returncode -9.
    """
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    output = {}

    def read(key, stream):
        output[key] = stream.read()
        stream.close()

    readers = [threading.Thread(target=read, args=(key, stream), daemon=True)
               for key, stream in (("stdout", proc.stdout), ("stderr", proc.stderr))]
    for reader in readers:
        reader.start()
    deadline = time.monotonic() + timeout
    for reader in readers:
        reader.join(max(0.0, deadline - time.monotonic()))
    timed_out = any(reader.is_alive() for reader in readers)
    if timed_out:
        os.kill(proc.pid, signal.SIGKILL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    for reader in readers:
        reader.join()
    stderr = output["stderr"].decode(errors="replace")
    if timed_out:
        stderr += f"\n[test_corpus] killed after {timeout} s"
    return proc.returncode, output["stdout"], stderr, usage.ru_maxrss / 1024  # KiB on Linux


def run_script(script: pathlib.Path, terra: bool, scratch: pathlib.Path,
               device: str = "cpu") -> Outcome:
    """Runs `script` plain or under `python -m terra run` on `device`, in a scratch cwd."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.pop("TERRA_DISABLE", None)
    env["TERRA_TEST_DEVICE"] = device
    # These programs test co-execution itself: the policy must not hand a loop back to plain
    # Python because co-executing it was slower than tracing it (bench/ covers that).
    env["TERRA_SPEED_CHECK"] = "0"
    stats_path = scratch / f"{script.stem}.{'terra' if terra else 'plain'}.stats.json"
    env["TERRA_STATS"] = str(stats_path)
    command = [sys.executable, *(["-m", "terra", "run"] if terra else []), str(script)]
    returncode, stdout, stderr, peak = run_measured(command, scratch, env, TIMEOUT_S)
    stats, error = None, ""
    if terra:
        try:
            stats = json.loads(stats_path.read_text())
        except (OSError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"
    return Outcome(returncode, stdout, stderr, stats, error, peak)


def _run_corpus(device: str, scratch: pathlib.Path) -> dict:
    """Every corpus program plain and under Terra on `device`, two subprocesses at a time."""
    scratch.mkdir()
    jobs = [(name, terra) for name in CORPUS for terra in (False, True)]
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        futures = {job: pool.submit(run_script, CORPUS_DIR / job[0], job[1], scratch, device)
                   for job in jobs}
        return {job: future.result() for job, future in futures.items()}


def _write_peak_rss_table(results: dict, device: str, artifacts: pathlib.Path) -> None:
    table = {name: {"eager_mib": round(results[(name, False)].peak_rss_mib, 1),
                    "terra_mib": round(results[(name, True)].peak_rss_mib, 1),
                    "ratio": round(results[(name, True)].peak_rss_mib
                                   / max(results[(name, False)].peak_rss_mib, 1e-9), 4)}
             for name in sorted(CORPUS)}
    path = artifacts / ("corpus_peak_rss.json" if device == "cpu"
                        else f"corpus_peak_rss.{device}.json")
    path.write_text(json.dumps(table, indent=1) + "\n")


@pytest.fixture(scope="module")
def corpus_results(artifacts_dir):
    """`corpus_results(device)`: the runs of every program on `device` (run once, cached)."""
    runs = {}
    with tempfile.TemporaryDirectory(prefix="terra-corpus-") as tmp:
        def results(device: str) -> dict:
            if device not in runs:
                runs[device] = _run_corpus(device, pathlib.Path(tmp) / device)
                _write_peak_rss_table(runs[device], device, artifacts_dir)
            return runs[device]

        yield results


def test_corpus_covers_every_hard_case():
    scripts = {p.name for p in CORPUS_DIR.glob("c[0-9]*.py")}
    assert scripts == set(CORPUS), "corpus/ and CORPUS disagree"
    assert len(CORPUS) >= 25
    covered = {case for program in CORPUS.values() for case in program.cases}
    assert not set(HARD_CASES) - covered, f"uncovered: {set(HARD_CASES) - covered}"
    assert covered <= set(HARD_CASES)
    for name, program in CORPUS.items():
        assert program.kind == "repeating" or program.why, f"{name}: justify its kind"


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _totals(stats: dict) -> str:
    return json.dumps({k: v for k, v in stats.items() if k != "regions"})


def _per_region(stats: dict) -> list:
    return [(r.get("name"), r.get("iterations_coexecuted")) for r in stats.get("regions", [])]


def _region_coexecuted(stats: dict, line: int) -> int:
    return sum(r.get("iterations_coexecuted", 0) for r in stats.get("regions", [])
               if r.get("line") == line)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", sorted(CORPUS))
@pytest.mark.parametrize("device", DEVICES)
def test_corpus_program(device, name, corpus_results):
    program = CORPUS[name]
    plain = corpus_results(device)[(name, False)]
    terra = corpus_results(device)[(name, True)]
    assert plain.returncode == 0, f"plain run failed:\n{_tail(plain.stderr)}"
    assert b"checksum " in plain.stdout
    assert terra.returncode == plain.returncode, f"terra run failed:\n{_tail(terra.stderr)}"
    if terra.stdout != plain.stdout:
        plain_lines = plain.stdout.decode(errors="replace").splitlines()
        terra_lines = terra.stdout.decode(errors="replace").splitlines()
        first = next((i for i, (a, b) in enumerate(zip(plain_lines, terra_lines)) if a != b),
                     min(len(plain_lines), len(terra_lines)))
        pytest.fail(f"stdout differs from line {first + 1}:\n"
                    f"  eager: {plain_lines[first:first + 3]}\n"
                    f"  terra: {terra_lines[first:first + 3]}\nstderr:\n{_tail(terra.stderr)}")
    assert "co-execution engine is unavailable" not in terra.stderr, _tail(terra.stderr, 3)
    assert terra.stats is not None, f"no TERRA_STATS file ({terra.stats_error})"
    coexecuted = terra.stats.get("iterations_coexecuted", 0)
    if program.known_limit and coexecuted < program.min_coexecuted:
        pytest.xfail(f"co-executed {coexecuted} < {program.min_coexecuted}: {program.known_limit}")
    assert coexecuted >= program.min_coexecuted, (
        f"co-executed {coexecuted} iterations, need >= {program.min_coexecuted} "
        f"({program.kind}); stats: {_totals(terra.stats)}")
    if program.region_line is not None:
        on_line = _region_coexecuted(terra.stats, program.region_line)
        assert on_line >= program.min_coexecuted, (
            f"the loop at line {program.region_line} co-executed {on_line} iterations; "
            f"regions: {_per_region(terra.stats)}")


@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_peak_rss(name, corpus_results):
    """Terra's peak RSS is within PEAK_RSS_BOUND of eager's (host memory, CPU runs)."""
    plain = corpus_results("cpu")[(name, False)]
    terra = corpus_results("cpu")[(name, True)]
    assert plain.returncode == 0 and terra.returncode == 0, "see test_corpus_program"
    assert plain.peak_rss_mib > 0 and terra.peak_rss_mib > 0
    ratio = terra.peak_rss_mib / plain.peak_rss_mib
    assert ratio <= PEAK_RSS_BOUND, (
        f"peak RSS under Terra {terra.peak_rss_mib:.1f} MiB is {ratio:.3f}x eager's "
        f"{plain.peak_rss_mib:.1f} MiB (bound {PEAK_RSS_BOUND}x)")
