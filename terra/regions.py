"""The region policy: which marked loop (or cell run) is the region, one at a time.

`terra.loops` marks loop heads; each run of a marked loop asks `POLICY.loop(...)` for
a `LoopRun` whose begin/end/abort calls wrap every iteration. A cell run is the single
iteration of the cell's long-lived run. The policy decides which of them owns the
engine's one active iteration:

- Only one iteration is active at a time. An accepted region that is active keeps it:
  loops started inside it are transparent for that iteration.
- Innermost first: while a *candidate* (a loop or cell still being probed) holds the
  iteration and a loop inside it begins, the candidate's iteration is aborted (what
  ran is kept, as eager) and the inner loop becomes the candidate.
- A candidate is traced into its own engine region, one per site, continued across
  the runs of the loop (an epoch's step loop continues the previous epoch's graph).
  The first iteration that repeats (is fully contained in the graph) accepts the
  site as a region. A site whose iterations do not repeat is rejected after
  `PROBE_MISSES` misses and becomes transparent; its enclosing loop is then probed.
  A loop with no enclosing candidate (rejecting it would hand the region to nobody)
  gets a longer budget, `PROBE_MISSES_OUTERMOST`. Both budgets allow a loop to
  repeat only once it has seen all its paths (eight batch offsets, three tree
  shapes, three sequence lengths).
  A site whose probed iterations run no tensor op (`PROBE_EMPTY` of them) becomes
  transparent too.
- Probing backs off: a loop that keeps missing is traced less often (after
  `PROBE_DENSE` misses, every 2nd iteration, then every 4th, at most every
  `PROBE_MAX_GAP`th); the iterations in between run plainly, not traced. The budgets
  count probed iterations. A traced iteration that diverges from the graph costs about
  twice an eager one (a detector whose proposals differ every step: 55 ms against
  30 ms), so probing every iteration made such programs 1.6x slower for the whole of
  the budget; a loop whose paths recur is still found, since probes at any spacing
  meet a recurring path again. Cell runs are always traced (a person runs them).
- A candidate loop that starts inside an nn.Module's forward while an enclosing
  candidate holds the iteration (a loop over layers or time steps) is transparent
  at once: the engine's node identity is structural (state inputs are numbered in
  order of use), so iterations over different layers look alike to it, and the
  enclosing step loop is the better region.
- A site that yielded its iteration to an inner loop that is an accepted region in
  `CONTAINER_STREAK` consecutive iterations (the epoch loop around the step loop, a
  cell around its training loop) becomes a container and is never a region. Unless the
  inner loop's runs took under `MINOR_INNER_SHARE` of those iterations' time (a loop
  clamping each parameter after the step, an EMA of the weights): the inner loop is then
  a detail of the enclosing one, which does the work; it becomes transparent, and the
  enclosing loop is probed with it inside. Should the enclosing loop be given up on
  after all (after `PROBE_MISSES_IN_PLACE` misses, a shorter budget), the inner loop is
  probed again.
- The speed check: a region's co-executed iterations after the first
  `SPEED_CHECK_WARMUP`, up to `SPEED_CHECK_AFTER`, are timed (with a sync before and one
  after, so that the GraphRunner's share of them is counted); then its next
  `PLAIN_SAMPLES` iterations run plainly and are timed (all but the first
  `PLAIN_WARMUP`). A region whose co-executed iterations took longer on average than the
  plain ones becomes transparent (`_check_speed`).
- An exception (KeyboardInterrupt included) leaving an iteration aborts it.

While a traced iteration is active, global nn.Module forward pre/post hooks keep the
engine's module path (`model/encoder/0`) current; they are removed in between, and not
installed for co-executed iterations (whose nodes have their paths). Ops traced after a
fallback in mid-iteration therefore record no module path.
"""

from __future__ import annotations

import builtins
import enum
import os
import threading
import time
import weakref

import torch

from terra import _engine_api, config
from terra.iterations import FEED
from terra.loops import INNER_RUNTIME_NAME, RUNTIME_NAME


class Status(enum.Enum):
    PROBING = "probing"
    REGION = "region"
    TRANSPARENT = "transparent"
    CONTAINER = "container"


class Site:
    """One loop head in the user's source (or one cell source), and what we learnt of it."""

    __slots__ = ("key", "name", "file", "line", "status", "region_key", "traced", "misses",
                 "empty", "container_streak", "minor_inner_streak", "cell_run", "reason",
                 "timings", "inert", "nested", "skip", "skipped", "plain_left", "demoted")

    def __init__(self, key: str, name: str, file: str, line: int) -> None:
        self.key, self.name, self.file, self.line = key, name, file, line
        self.status = Status.PROBING
        self.inert = False  # TRANSPARENT or CONTAINER: never takes an iteration again
        self.nested = False  # it once took the iteration from an enclosing candidate loop
        self.region_key: str | None = None  # engine key of the accepted region
        self.traced = 0  # probed iterations merged into the site's region
        self.misses = 0  # probed iterations (after the first) that did not repeat
        self.empty = 0  # probed iterations while the region's graph was still empty
        self.skip = 0  # iterations to run untraced before the next probe (backing off)
        self.skipped = 0  # iterations run untraced so far while probing
        self.plain_left = 0  # iterations still to run plainly, timed, for the speed check
        self.container_streak = 0
        # Consecutive iterations that yielded to an accepted inner region which took only a
        # small share of them (see MINOR_INNER_SHARE).
        self.minor_inner_streak = 0
        # Inner sites made transparent in this one's favour (probed again if it is given up).
        self.demoted: list[Site] = []
        self.cell_run: LoopRun | None = None
        self.reason = ""  # why the status is what it is (for %terra status)
        # [seconds, iterations] by the engine phase an iteration began in; "window" and
        # "plain": the speed check's co-executed and plain samples.
        self.timings: dict[str, list[float]] = {}

    def decide(self, status: Status, reason: str) -> None:
        """Records a final decision about this site."""
        self.status = status
        self.reason = reason
        self.inert = status in (Status.TRANSPARENT, Status.CONTAINER)
        if self.inert:
            demoted, self.demoted = self.demoted, []
            for inner in demoted:
                inner.probe_again(f"{self.name}, made the region in its place, is not one")

    def probe_again(self, reason: str) -> None:
        """Undoes a decision taken in favour of an enclosing site (see `demoted`)."""
        self.status = Status.PROBING
        self.reason = reason
        self.inert = False
        self.misses = self.empty = self.skip = 0


class LoopRun:
    """One run of a marked loop (the `with` block); its methods wrap each iteration."""

    __slots__ = ("site", "policy", "region_id", "owns", "yielded_to",
                 "phase", "started", "record_token", "plain_started", "yielded_at",
                 "inner_seconds")

    def __init__(self, site: Site, policy: "RegionPolicy") -> None:
        self.site = site
        self.policy = policy
        self.region_id: int | None = None
        self.owns = False  # this run holds the engine's active iteration
        self.yielded_to: Site | None = None  # the inner loop this iteration gave way to
        self.phase = ""  # engine phase of the region when the iteration began
        self.started = 0.0
        self.record_token = None  # terra.iterations bookkeeping, only with listeners
        self.plain_started = 0.0  # this iteration is a timed plain sample (speed check)
        # When this iteration gave way to an inner loop, and the time from then to the end
        # of the last inner loop run since (the share that decides container or not; ops
        # between two inner loops count as theirs, which errs towards a container).
        self.yielded_at = 0.0
        self.inner_seconds = 0.0

    def __enter__(self) -> "LoopRun":
        self.policy.open_runs.append(self)
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if self.owns:  # an exception arrived between begin() and the body's try
            self.policy.abort(self)
        self.policy.close_run(self)
        return False

    def begin(self) -> None:
        """Called at the top of every iteration of the loop body."""
        if not self.site.inert:  # fast path: rejected loops cost one attribute test
            self.policy.begin(self)

    def end(self) -> None:
        """Called when the body is left (normally, by break/continue/return, or after abort)."""
        if (self.owns or self.yielded_to is not None or self.site.container_streak
                or self.plain_started):
            self.policy.end(self)

    def abort(self) -> None:
        """Called when an exception leaves the body (before `end`)."""
        self.policy.abort(self)


class PassiveRun:
    """A loop run that can take no iteration: its site was given up on, or the loop runs in
    a forked child, on another thread or with co-execution off. Every call is a no-op, so
    such a loop costs two empty calls per iteration (an innermost one, none: it runs its
    unwrapped copy, terra/loops.py). One instance serves every such run."""

    __slots__ = ()

    def __enter__(self) -> "PassiveRun":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        return False

    def begin(self) -> None:
        pass

    def end(self) -> None:
        pass

    def abort(self) -> None:
        pass


PASSIVE_RUN = PassiveRun()


def _is_compiling() -> bool:
    """True while torch.compile traces (Dynamo reads this as a constant and drops the rest)."""
    return torch.compiler.is_compiling()


class ModulePathHooks:
    """Global nn.Module forward pre/post hooks feeding the engine the current module path."""

    def __init__(self) -> None:
        self._handles: tuple | None = None
        self._stack: list[tuple[object, str]] = []
        self._names: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def install(self) -> None:
        """Registers the hooks (idempotent); cheap, done when an iteration begins."""
        if self._handles is not None:
            return
        from torch.nn.modules import module as nn_module  # noqa: PLC0415

        self._stack.clear()
        self._handles = (nn_module.register_module_forward_pre_hook(self._enter),
                         nn_module.register_module_forward_hook(self._leave, always_call=True))

    def depth(self) -> int:
        """How many module forwards are running (seen since the hooks were installed)."""
        return len(self._stack)

    def remove(self) -> None:
        """Removes the hooks; modules then run at full speed outside regions."""
        if self._handles is None:
            return
        for handle in self._handles:
            handle.remove()
        self._handles = None
        if self._stack:
            self._stack.clear()
            self._set_path("")

    def _child_name(self, parent: object, module: object) -> str:
        try:
            return self._names[module]
        except (KeyError, TypeError):
            pass
        name = type(module).__name__
        for child_name, child in getattr(parent, "_modules", {}).items():
            if child is module:
                name = child_name
                break
        try:
            self._names[module] = name
        except TypeError:
            pass
        return name

    def _enter(self, module, args) -> None:
        if _is_compiling():
            return  # torch.compile traces module calls, hooks included: keep them out
        if self._stack:
            parent, parent_path = self._stack[-1]
            path = f"{parent_path}/{self._child_name(parent, module)}"
        else:
            path = type(module).__name__
        self._stack.append((module, path))
        self._set_path(path)

    def _leave(self, module, args, output) -> None:
        if _is_compiling():
            return
        if self._stack and self._stack[-1][0] is module:
            self._stack.pop()
            self._set_path(self._stack[-1][1] if self._stack else "")

    @staticmethod
    def _set_path(path: str) -> None:
        engine = _engine_api.get()
        if engine is not None:
            engine.set_module_path(path)


class RegionPolicy:
    """Decides, iteration by iteration, which loop run or cell run is the active region."""

    PROBE_MISSES = 16  # non-repeating probed iterations before a nested site is rejected
    PROBE_MISSES_OUTERMOST = 32  # the same for a loop with no enclosing candidate loop
    PROBE_EMPTY = 3  # probed iterations without tensor ops before a site is ignored
    PROBE_DENSE = 4  # misses after which probing backs off
    PROBE_MAX_GAP = 8  # at most every this many iterations one is probed
    CONTAINER_STREAK = 2  # consecutive iterations yielding to an inner loop
    # An accepted inner region whose runs take less of the enclosing loop's iterations than
    # this is made transparent rather than the enclosing loop a container.
    MINOR_INNER_SHARE = 0.5
    # A loop probed in place of inner regions made transparent for it hands the iteration
    # back to them after this many misses (eight batch offsets still fit).
    PROBE_MISSES_IN_PLACE = 8
    # The speed check. Both sides' first iterations are slower than their steady ones (the
    # graph's call patterns, memory from a new malloc arena, OpenMP teams), and are left out.
    SPEED_CHECK_WARMUP = 8  # co-executed iterations before the timed ones
    SPEED_CHECK_AFTER = 64  # co-executed iterations before the plain ones
    PLAIN_SAMPLES = 8  # plain iterations run for the check
    PLAIN_WARMUP = 3  # of which the first are not timed

    def __init__(self) -> None:
        self.sites: dict[str, Site] = {}
        self.active: LoopRun | None = None
        self.open_runs: list[LoopRun] = []  # loop runs entered and not left, outermost first
        self.plain_run: LoopRun | None = None  # running a timed plain sample (speed check)
        self.hooks = ModulePathHooks()
        self._thread = threading.main_thread().ident
        self._forked = False  # in a forked child (DataLoader workers): never touch the engine
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._after_fork_in_child)

    def _after_fork_in_child(self) -> None:
        """A forked child has no GraphRunner thread: its loops run eagerly."""
        self._forked = True
        self.active = None

    # Entry points used by the rewritten code and the IPython extension.
    def loop(self, key: str, name: str, file: str, line: int) -> LoopRun | PassiveRun:
        """A new run of the loop at `key` (the callable behind `__terra_loop__`). Decided
        per run: a loop that calls terra.enable() in its body takes iterations from its
        next run on."""
        site = self._site(key, name, file, line)
        if site.inert or self._runs_plainly():
            return PASSIVE_RUN
        return LoopRun(site, self)

    def inner_loop(self, key: str, name: str, file: str, line: int) -> LoopRun | None:
        """The same for an innermost loop (`__terra_inner_loop__`), but None instead of a
        passive run: the loop then runs its unwrapped copy (terra/loops.py)."""
        site = self.sites.get(key)
        if (site is not None and site.inert) or self._runs_plainly():
            return None
        return LoopRun(site or self._site(key, name, file, line), self)

    def _runs_plainly(self) -> bool:
        """True when no loop iteration starting now can take the engine's iteration: in a
        forked child, on a thread other than the main one, inside a plain sample of the speed
        check (loops within it run plainly too), or with co-execution off."""
        if self._forked or self.plain_run is not None or threading.get_ident() != self._thread:
            return True
        engine = _engine_api.get()
        return engine is not None and not engine.is_enabled()

    def cell_run(self, key: str, name: str) -> LoopRun:
        """The long-lived run of a cell source: each execution of the cell is an iteration."""
        site = self._site(key, name, "<cell>", 1)
        if site.cell_run is None:
            site.cell_run = LoopRun(site, self)
        return site.cell_run

    def close_run(self, run: LoopRun) -> None:
        """`run`'s loop was left (runs close innermost first; searched from the end)."""
        if self.plain_run is run:
            # An exception arrived where neither abort() nor end() ran (a KeyboardInterrupt
            # raised as end() was entered): the sample must not stay open, or every loop
            # would run plainly from then on.
            self._drop_plain_sample(run)
        for i in range(len(self.open_runs) - 1, -1, -1):
            if self.open_runs[i] is run:
                del self.open_runs[i]
                if i > 0 and self.open_runs[i - 1].yielded_at:
                    enclosing = self.open_runs[i - 1]  # gave way to an inner loop: this one?
                    enclosing.inner_seconds = time.perf_counter() - enclosing.yielded_at
                return

    def reset(self) -> None:
        """Forgets every decision (after the engine forgot its regions)."""
        if self.active is not None:
            self._release(self.active, abort=True)
        self.plain_run = None
        self.sites.clear()

    def _site(self, key: str, name: str, file: str, line: int) -> Site:
        site = self.sites.get(key)
        if site is None:
            site = self.sites[key] = Site(key, name, file, line)
        return site

    # The protocol.
    def begin(self, run: LoopRun) -> None:
        """Gives `run` the engine's iteration if the policy says so."""
        site = run.site
        if site.status is Status.TRANSPARENT or site.status is Status.CONTAINER:
            return
        engine = _engine_api.get()
        if engine is None:
            site.decide(Status.TRANSPARENT, "no engine")
            return
        if self._runs_plainly():
            return  # asked again per iteration: the body may fork, disable Terra, ...
        if site.plain_left:
            site.plain_left -= 1
            self.plain_run = run
            run.plain_started = time.perf_counter()
            return
        if site.skip:
            # Backing off: this iteration runs plainly (or inside the enclosing candidate's).
            site.skip -= 1
            site.skipped += 1
            return
        active = self.active
        if active is not None:
            if active.site is site or active.site.status is Status.REGION:
                return  # one region at a time; the accepted (or same) one keeps it
            if self.hooks.depth():
                site.decide(Status.TRANSPARENT, "runs inside an nn.Module forward")
                return
            self._release(active, abort=True)  # innermost first: the candidate yields
            active.yielded_to = site
            active.yielded_at = time.perf_counter()
            site.nested = site.nested or active.site.cell_run is None
        region_id = self._region_id(run, engine)
        run.phase = engine.phase(region_id)
        run.started = time.perf_counter()
        run.record_token = FEED.open(engine, region_id) if FEED.listeners else None
        # Owned before the engine's begin: an exception from here on (a KeyboardInterrupt is
        # raised after any call returns) aborts the iteration (LoopRun.__exit__); aborting one
        # the engine never began is a no-op.
        self.active = run
        run.owns = True
        engine.begin_iteration(region_id)
        if run.phase != "coexecuting":
            # Only traced ops record a module path: a co-executed one's node has it already.
            # Global module hooks take every module call off PyTorch's fast path (an MLP step
            # of 6 module calls: +0.06-0.09 ms on 0.28).
            self.hooks.install()

    def end(self, run: LoopRun) -> None:
        """Ends `run`'s iteration (normal exit, break, continue, return) and judges it."""
        if run.plain_started:
            self._end_plain_sample(run)
        if run.owns:
            self._release(run, abort=False)
            elapsed = time.perf_counter() - run.started
            timing = run.site.timings.setdefault(run.phase, [0.0, 0])
            timing[0] += elapsed
            timing[1] += 1
            if run.site.status is Status.PROBING:
                self._judge(run)
            elif (run.site.status is Status.REGION and run.phase == "coexecuting"
                  and timing[1] <= self.SPEED_CHECK_AFTER):
                self._time_coexecuted(run.site, timing[1], elapsed)
            if run.record_token is not None:
                self._publish(run)
        self._note_containment(run)

    def abort(self, run: LoopRun) -> None:
        """An exception left the iteration: the engine keeps what ran, as eager would."""
        if run.plain_started:
            self._drop_plain_sample(run)
        if run.owns:
            self._release(run, abort=True)

    # Helpers.
    @staticmethod
    def _publish(run: LoopRun) -> None:
        """Delivers the finished iteration's record to the listeners (terra.iterations)."""
        token, run.record_token = run.record_token, None
        engine = _engine_api.get()
        if engine is None or run.region_id is None:
            return
        kind = "cell" if run.site.cell_run is not None else "loop"
        FEED.close(engine, run.region_id, token, run.site.name, kind)

    def _release(self, run: LoopRun, abort: bool) -> None:
        self.active = None
        run.owns = False
        self.hooks.remove()
        if self._forked:
            return  # the iteration belongs to the parent process's engine
        engine = _engine_api.get()
        if abort:
            engine.abort_iteration()
        else:
            engine.end_iteration()

    @staticmethod
    def _region_id(run: LoopRun, engine) -> int:
        """The engine region of the run's site (found again each run: survives a reset)."""
        if run.region_id is None:
            site = run.site
            run.region_id = engine.region(site.key, site.name, site.file, site.line)
        return run.region_id

    def _judge(self, run: LoopRun) -> None:
        """After a probed iteration: accept, keep probing, or reject the site."""
        site = run.site
        engine = _engine_api.get()
        if self._graph_nodes(run.region_id) == 0:
            site.empty += 1
            if site.empty >= self.PROBE_EMPTY:
                site.decide(Status.TRANSPARENT, "its iterations run no tensor op")
            return
        if engine.last_iteration_repeated(run.region_id):
            site.region_key = site.key
            site.decide(Status.REGION, f"iteration {site.traced + 1} repeated")
            return
        if site.traced > 0:
            site.misses += 1
            budget = self.PROBE_MISSES if site.nested else self.PROBE_MISSES_OUTERMOST
            if site.demoted:
                budget = min(budget, self.PROBE_MISSES_IN_PLACE)
            if site.misses >= budget:
                site.decide(Status.TRANSPARENT, "consecutive iterations never repeat")
            elif site.cell_run is None:
                site.skip = self._probe_gap(site.misses) - 1
        site.traced += 1

    @classmethod
    def _probe_gap(cls, misses: int) -> int:
        """Iterations from one probe to the next after `misses` misses: 1, then 2, 4, ..."""
        if misses < cls.PROBE_DENSE:
            return 1
        return min(2 ** ((misses - cls.PROBE_DENSE) // cls.PROBE_DENSE + 1), cls.PROBE_MAX_GAP)

    def _time_coexecuted(self, site: Site, count: int, elapsed: float) -> None:
        """Co-executed iteration number `count` of `site` took `elapsed` s: the speed check's
        window, which a sync opens and a quiesce (also timed) closes; the plain samples next."""
        if (site.cell_run is not None or count < self.SPEED_CHECK_WARMUP
                or not config.get("TERRA_SPEED_CHECK")):
            return
        engine = _engine_api.get()
        if count == self.SPEED_CHECK_WARMUP:
            engine.sync()  # the window starts with nothing queued
            return
        window = site.timings.setdefault("window", [0.0, 0])
        window[0] += elapsed
        window[1] += 1
        if count == self.SPEED_CHECK_AFTER:
            started = time.perf_counter()
            engine.quiesce()  # and the runner's OpenMP team gone, which would slow plain kernels
            window[0] += time.perf_counter() - started
            site.plain_left = self.PLAIN_SAMPLES

    def _drop_plain_sample(self, run: LoopRun) -> None:
        """Ends `run`'s plain sample without timing it (an exception cut it short)."""
        run.plain_started = 0.0
        self.plain_run = None

    def _end_plain_sample(self, run: LoopRun) -> None:
        site, elapsed = run.site, time.perf_counter() - run.plain_started
        self._drop_plain_sample(run)
        if site.plain_left < self.PLAIN_SAMPLES - self.PLAIN_WARMUP:
            timing = site.timings.setdefault("plain", [0.0, 0])
            timing[0] += elapsed
            timing[1] += 1
        if site.plain_left == 0:
            self._check_speed(site)

    def _check_speed(self, site: Site) -> None:
        """Gives a loop back to plain Python when co-executing it is slower than running it
        plainly, as eager does.

        Co-execution wins by running kernels beside Python. A loop of tiny ops between
        `.item()` calls waits for the GraphRunner at each of them; a loop whose kernels
        already keep every core busy (intra-op threads on a small machine) has no core to
        overlap on: both run faster without Terra. Loops around it still being probed
        become containers. Cell runs are always co-executed.
        """
        plain_ms, coexec_ms = _mean_ms(site.timings, "plain"), _mean_ms(site.timings, "window")
        if plain_ms is None or coexec_ms is None or coexec_ms <= plain_ms:
            return
        site.decide(Status.TRANSPARENT,
                    f"co-executed iterations took {coexec_ms:.3g} ms, plain ones "
                    f"{plain_ms:.3g} ms: it runs plainly")
        # The loops around it run the same code and more: probing them (a traced iteration
        # of a detector's step loop costs 1.5x its eager time) would cost more than it
        # could win.
        for run in self.open_runs:
            if run.site is not site and run.site.status is Status.PROBING:
                run.site.decide(Status.CONTAINER, f"contains {site.name}, which "
                                "co-executed slower than it ran plainly")

    def _note_containment(self, run: LoopRun) -> None:
        """Counts iterations that gave way to an inner loop that is (now) a region."""
        site, inner = run.site, run.yielded_to
        inner_seconds, run.inner_seconds = run.inner_seconds, 0.0
        yielded_at, run.yielded_at = run.yielded_at, 0.0
        run.yielded_to = None
        if inner is None or inner.status is Status.TRANSPARENT:
            site.container_streak = site.minor_inner_streak = 0
            return
        if inner.status is not Status.REGION:
            return  # the inner candidate is still being probed: no evidence either way
        elapsed = time.perf_counter() - run.started
        if (site.status is Status.PROBING and inner.nested and yielded_at and elapsed > 0
                and inner_seconds < self.MINOR_INNER_SHARE * elapsed):
            site.minor_inner_streak += 1
            if site.minor_inner_streak >= self.CONTAINER_STREAK:
                inner.decide(Status.TRANSPARENT, f"a small part ({inner_seconds / elapsed:.0%}) "
                             f"of the iterations of {site.name}, which does the work")
                site.demoted.append(inner)
                site.container_streak = site.minor_inner_streak = 0
            return
        site.minor_inner_streak = 0
        site.container_streak += 1
        if site.status is Status.PROBING and site.container_streak >= self.CONTAINER_STREAK:
            site.decide(Status.CONTAINER, "contains a region")

    @staticmethod
    def _graph_nodes(region_id: int) -> int | None:
        entry = _engine_api.region_stats(region_id)
        if entry is None:
            return None
        return entry.get("graph_nodes")

    # Reporting.
    def describe(self) -> list[dict]:
        """One dict per site: key, name, status, reason, speedup (for `%terra status`)."""
        return [{"key": s.key, "name": s.name, "file": s.file, "line": s.line,
                 "status": s.status.value, "region_key": s.region_key, "reason": s.reason,
                 "speedup": _speedup(s.timings)}
                for s in self.sites.values()]


def _mean_ms(timings: dict[str, list[float]], key: str) -> float | None:
    """Mean ms per iteration of `timings[key]` ([seconds, iterations]); None before any."""
    timing = timings.get(key)
    return 1e3 * timing[0] / timing[1] if timing and timing[1] else None


def _speedup(timings: dict[str, list[float]]) -> str:
    """Mean plain iteration time over mean co-executed iteration time, as the speed check
    measured them ("" until it did)."""
    plain_ms, coexec_ms = _mean_ms(timings, "plain"), _mean_ms(timings, "window")
    if not plain_ms or not coexec_ms:
        return ""
    return f"{plain_ms / coexec_ms:.2f}x"


POLICY = RegionPolicy()


def install() -> None:
    """Makes `__terra_loop__` and `__terra_inner_loop__` (used by rewritten loops)
    resolvable from any user module."""
    setattr(builtins, RUNTIME_NAME, POLICY.loop)
    setattr(builtins, INNER_RUNTIME_NAME, POLICY.inner_loop)
