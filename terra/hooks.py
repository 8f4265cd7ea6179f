"""Thin Python hooks on the paths that read tensor memory without the dispatcher.

In co-execution a tensor Python holds may be a placeholder whose memory the GraphRunner
has not written yet (DESIGN §3 "fetch"). Ops that read values wait inside the engine; the
paths below bypass the dispatcher, so each gets a wrapper that fetches first: Tensor.numpy,
tolist, __array__, __dlpack__, __repr__, __format__, data_ptr, untyped_storage, storage,
__reduce_ex__ / __deepcopy__ (pickling, torch.save, copy.deepcopy), torch.save, and the RNG
state functions (torch.manual_seed, get/set_rng_state, ...), which must see the RNG stream
after every random op already issued, and the setters of settings kernels read when they run
(thread count, default dtype, oneDNN and cuDNN flags, also when set through torch.backends'
properties). Explicit torch.Generator methods cannot be wrapped
(a C type); instead the engine runs every op that takes a Generator object on the Python
thread after a sync, so a Generator's state is current whenever Python reads or reseeds it.
That cannot hold for the default generator, which queued random ops draw from: reading
`torch.default_generator` fetches first (the torch module's class becomes a subclass of
ModuleType with that one property, the documented way to give a module a property), so
`torch.default_generator.get_state()` sees every random op already issued. A reference kept
from before (`g = torch.default_generator` at the top of the script) does not fetch.

A numpy array from Tensor.numpy() (which __array__ calls) views the tensor's memory, so the
program may write that memory through it, past the dispatcher, while ops that read it wait on
the GraphRunner. The wrapper tells the engine, for as long as the array lives, and the engine
then treats that memory like a numpy array's own (docs/architecture.md, "External memory").

Code torch.compile made with Inductor reads its inputs' memory in its own kernels, and calls
ATen only for the ops it did not fuse: a placeholder there would be read before the runner
wrote it (a segfault, for CPU placeholders have no memory yet). So a compiled graph's call
(forward or backward) fetches first and runs with interception paused: to the engine it is
one eager call, and its outputs are feeds. The hook goes on `CompiledFxGraph.__call__` when
the program first calls torch.compile, sparing programs that never compile Inductor's import.

The program's other threads (a logger fed through a queue, a checkpoint writer) may read the
tensors the loop's thread hands them while the ops that compute them are still queued.
Interception is per thread, so each threading.Thread is adopted as it starts
(`Thread._bootstrap_inner`, which runs every thread's `run`, subclasses' included; the public
`threading.setprofile` would displace a profiler's hook): its ops then wait for the ops queued
before them (coexec/src/other_threads.cpp). Threads started before `import terra`, or
without `threading`, are not adopted.

The originals stay reachable (`torch._C.TensorBase.data_ptr`), which tests use to show
what a read that missed its fetch would see (TERRA_DEBUG_POISON=1).
"""

from __future__ import annotations

import functools
import threading
import types
import weakref

import torch

from terra import _C

# Tensor methods that read memory directly, wrapped on torch.Tensor.
TENSOR_METHODS = (
    "numpy", "tolist", "__array__", "__dlpack__", "__repr__", "__format__", "data_ptr",
    "untyped_storage", "storage", "_typed_storage", "__reduce_ex__", "__deepcopy__",
    # Python callbacks over the elements, in C: they read (and write) memory directly.
    "apply_", "map_", "map2_",
    # Composites that read a tensor argument's memory in C++ (split points, lengths).
    "tensor_split",
)
# Methods that format: their internals issue ops, which are not the program's own.
FORMATTING = frozenset({"__repr__", "__format__"})
# Methods whose result views the tensor's memory: the program can write it through them.
EXPOSING = frozenset({"numpy"})
# Module-level functions: (module, name).
FUNCTIONS = (
    (torch, "save"), (torch.serialization, "save"),
    (torch, "manual_seed"), (torch.random, "manual_seed"),
    (torch, "seed"), (torch.random, "seed"),
    (torch, "initial_seed"), (torch.random, "initial_seed"),
    (torch, "get_rng_state"), (torch.random, "get_rng_state"),
    (torch, "set_rng_state"), (torch.random, "set_rng_state"),
    (torch.utils.dlpack, "to_dlpack"),
    # Composites that read a tensor argument's memory in C++ (split points, lengths).
    (torch, "tensor_split"), (torch, "ctc_loss"), (torch.nn.functional, "ctc_loss"),
    (torch.nn.utils.rnn, "pad_packed_sequence"),
)
# Settings that kernels read when they run, not when they are queued: a change first waits
# for the queued ops (issued under the old setting), and the runner then follows the
# program's thread count and denormal mode (terra.engine: settings_changed). The default
# dtype is also part of each op's identity in the graph.
SETTINGS = (
    (torch, "set_num_threads"), (torch, "set_default_dtype"), (torch, "set_default_tensor_type"),
    (torch, "set_flush_denormal"), (torch, "use_deterministic_algorithms"),
    (torch, "set_float32_matmul_precision"),
    (torch._C, "_set_mkldnn_enabled"), (torch._C, "_set_mkldnn_deterministic"),
    (torch._C, "_set_onednn_allow_tf32"), (torch._C, "_set_fp32_precision_setter"),
    (torch._C, "_set_deterministic_algorithms"), (torch._C, "_set_float32_matmul_precision"),
    (torch._C, "_set_cudnn_enabled"), (torch._C, "_set_cudnn_benchmark"),
    (torch._C, "_set_cudnn_deterministic"), (torch._C, "_set_cudnn_allow_tf32"),
    (torch._C, "_set_cublas_allow_tf32"), (torch._C, "_set_sdp_use_math"),
    (torch._C, "_set_sdp_use_flash"), (torch._C, "_set_sdp_use_mem_efficient"),
)
# Where torch.backends keeps the settings' properties (`torch.backends.mkldnn.enabled = False`):
# each property holds its own reference to the setter, so wrapping the setter in torch._C
# does not reach it.
BACKEND_MODULES = ("torch.backends.mkldnn", "torch.backends.cudnn")
CUDA_FUNCTIONS = (
    "synchronize", "manual_seed", "manual_seed_all", "seed", "seed_all",
    "get_rng_state", "set_rng_state", "get_rng_state_all", "set_rng_state_all",
)


class HookState:
    """What was installed (the module's one piece of state)."""

    installed: list[tuple[object, str, object]] = []


def _expose(engine, tensor, array) -> None:
    """Tells `engine` that `array` views `tensor`'s memory, until `array` dies."""
    storage = torch._C.TensorBase.untyped_storage(tensor)._cdata
    engine.expose(storage)
    finalizer = weakref.finalize(array, engine.release_exposed, storage)
    finalizer.atexit = False


def _replace(owner, name: str, wrap) -> None:
    """Replaces `owner.name` by `wrap(original)` once (the original stays reachable)."""
    original = getattr(owner, name, None)
    if original is None or hasattr(original, "__terra_original__"):
        return
    wrapper = functools.wraps(original)(wrap(original))
    wrapper.__terra_original__ = original
    setattr(owner, name, wrapper)
    HookState.installed.append((owner, name, original))


def _fetching(original, engine, *, pause: bool, exposes: bool = False):
    """`original`, preceded by a fetch (and with interception paused when `pause`; its result
    registered as a view of the tensor's memory when `exposes`)."""

    def wrapper(*args, **kwargs):
        if engine.pending():
            engine.fetch()
        if exposes:
            array = original(*args, **kwargs)
            _expose(engine, args[0], array)
            return array
        if not pause:
            return original(*args, **kwargs)
        was_on = engine.pause_interception()
        try:
            return original(*args, **kwargs)
        finally:
            engine.resume_interception(was_on)

    return wrapper


def _install(owner, name: str, engine, *, pause: bool = False, exposes: bool = False) -> None:
    _replace(owner, name, lambda original: _fetching(original, engine, pause=pause,
                                                     exposes=exposes))


def _changing_setting(original, engine, name: str):
    """`original` (a setter), after a fetch; then the runner follows the new setting."""

    def wrapper(*args, **kwargs):
        if engine.pending():
            engine.fetch()
        result = original(*args, **kwargs)
        flush = int(bool(args[0])) if name == "set_flush_denormal" and args else -1
        engine.settings_changed(flush)
        return result

    return wrapper


def _install_compiled_graph_hook(engine) -> None:
    from torch._inductor import output_code  # noqa: PLC0415 (an import of 0.7 s: on demand)

    _install(output_code.CompiledFxGraph, "__call__", engine, pause=True)


def _compiling(original, engine):
    """torch.compile, which first hooks the graphs Inductor will compile."""

    def compile(*args, **kwargs):
        _install_compiled_graph_hook(engine)
        return original(*args, **kwargs)

    return compile


def _adopting(original, engine):
    """`Thread._bootstrap_inner`, which first has the engine intercept the new thread."""

    def bootstrap_inner(self):
        engine.adopt_thread()
        return original(self)

    return bootstrap_inner


def _replaying_backward(original):
    """torch.autograd's `_engine_run_backward`, which the engine may answer from a recording.

    Only `backward()` calls that accumulate into the leaves' .grad (create_graph off, no
    `inputs`) are offered to the engine; `torch.autograd.grad` and the rest run as usual.
    """

    def run_backward(t_outputs, *args, **kwargs):
        # backward() passes (grad_tensors, retain_graph, create_graph, inputs) positionally.
        if not kwargs.get("accumulate_grad") or len(args) != 4 or args[2] or args[3]:
            return original(t_outputs, *args, **kwargs)
        start = _C.begin_backward(tuple(t_outputs), bool(args[1]))
        if start == "replayed":
            return ()
        if start == "run":
            return original(t_outputs, *args, **kwargs)
        try:
            result = original(t_outputs, *args, **kwargs)
        except BaseException:
            _C.end_backward(False)
            raise
        _C.end_backward(True)
        return result

    return run_backward


def _noting_saved_tensor_hooks(original):
    """The push of saved-tensor hooks, which runs Python in backward: not replayed then."""

    def push(*args, **kwargs):
        _C.note_saved_tensor_hooks()
        return original(*args, **kwargs)

    return push


def _fetch_on_default_generator(engine) -> None:
    """Makes `torch.default_generator` a property of the torch module that fetches first."""
    original_class = type(torch)
    if original_class is not types.ModuleType:
        return  # someone else's module class: leave it alone

    class TorchModule(types.ModuleType):
        @property
        def default_generator(self):
            if engine.pending():
                engine.fetch()
            return vars(self)["default_generator"]

        @default_generator.setter
        def default_generator(self, value):
            vars(self)["default_generator"] = value

    torch.__class__ = TorchModule
    HookState.installed.append((torch, "__class__", original_class))


def install(engine) -> None:
    """Wraps every bypassing path with a fetch from `engine` (idempotent)."""
    if HookState.installed:
        return
    for name in TENSOR_METHODS:
        _install(torch.Tensor, name, engine, pause=name in FORMATTING, exposes=name in EXPOSING)
    for module, name in FUNCTIONS:
        _install(module, name, engine, pause=name == "save")
    for name in CUDA_FUNCTIONS:
        _install(torch.cuda, name, engine)
    for owner, name in SETTINGS:
        _replace(owner, name, lambda original, name=name: _changing_setting(original, engine,
                                                                            name))
    _point_properties_at_wrapped_setters()
    _replace(torch, "compile", lambda original: _compiling(original, engine))
    _replace(threading.Thread, "_bootstrap_inner", lambda original: _adopting(original, engine))
    _replace(torch.autograd, "_engine_run_backward", _replaying_backward)
    _replace(torch._C._autograd, "_push_saved_tensors_default_hooks", _noting_saved_tensor_hooks)
    _fetch_on_default_generator(engine)


def _point_properties_at_wrapped_setters() -> None:
    """Gives torch.backends' setting properties the wrapped setters."""
    import importlib  # noqa: PLC0415
    from torch.backends import ContextProp  # noqa: PLC0415

    wrapped = {id(original): getattr(owner, name)
               for owner, name, original in HookState.installed}
    for module_name in BACKEND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        for prop in vars(type(module)).values():
            if isinstance(prop, ContextProp) and id(prop.setter) in wrapped:
                original = prop.setter
                prop.setter = wrapped[id(original)]
                HookState.installed.append((prop, "setter", original))


def uninstall() -> None:
    """Restores every wrapped function (tests)."""
    for owner, name, original in reversed(HookState.installed):
        setattr(owner, name, original)
    HookState.installed.clear()
