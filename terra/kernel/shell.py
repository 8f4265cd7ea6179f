"""TerraShell: the IPython shell behind the Terra kernel.

The C++ interpreter (kernel/interpreter.cpp) calls one ``kernel_*`` method per
Jupyter request and sends back the dict it returns; everything Python-facing
(magics, display, tracebacks, completion, inspection, history, input) is
IPython's, wired to the kernel the way ipykernel's ZMQInteractiveShell does.
"""
import atexit
import platform
import sys

import _terra_kernel as native
from IPython.core import page, payloadpage
from IPython.core.autocall import ZMQExitAutocall
from IPython.core.completer import provisionalcompleter, rectify_completions
from IPython.core.interactiveshell import InteractiveShell, InteractiveShellABC
from IPython.utils.tokenutil import token_at_cursor
from traitlets import Instance, Type, default
from traitlets.config import Config

from terra.kernel import comm as kernel_comm
from terra.kernel import display, stdin, streams

KERNEL_VERSION = "0.1.0"
EXTENSION_MODULE = "terra.ipython"


class KernelHandle:
    """What ``get_ipython().kernel`` offers libraries (ipywidgets' Output widget)."""

    def get_parent(self, channel="shell"):
        """The request being handled, as ipykernel >= 6 returns it (header only)."""
        return {"header": native.parent_header()}


class TerraShell(InteractiveShell):
    """An InteractiveShell whose output, errors and payloads go to Jupyter messages."""

    displayhook_class = Type(display.TerraDisplayHook)
    display_pub_class = Type(display.TerraDisplayPublisher)
    exiter = Instance(ZMQExitAutocall)
    kernel = Instance(KernelHandle, allow_none=True)

    @default("exiter")
    def _exiter_default(self):
        return ZMQExitAutocall(self)

    @default("kernel")
    def _kernel_default(self):
        return KernelHandle()

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._last_error = None
        self._input_hooks = stdin.InputHooks()
        self.keepkernel_on_exit = None

    # -- IPython hooks ---------------------------------------------------------------

    def init_virtualenv(self):
        """The kernel already runs inside its virtual environment."""

    def init_hooks(self):
        super().init_hooks()
        # `obj?` and %page output travel as a pager payload of the execute_reply.
        self.set_hook("show_in_pager", page.as_hook(payloadpage.page), 99)

    def enable_gui(self, gui=None):
        """GUI event loops do not exist in this kernel; inline output is used instead."""
        if gui not in (None, "inline"):
            print(f"terra kernel: GUI event loop {gui!r} is not supported", file=sys.stderr)

    def ask_exit(self):
        """`exit`/`quit`: ask the front end to shut the kernel down (ask_exit payload)."""
        self.exit_now = not self.keepkernel_on_exit
        self.payload_manager.write_payload(
            {"source": "ask_exit", "keepkernel": bool(self.keepkernel_on_exit)}
        )

    def set_next_input(self, text, replace=False):
        """Send the text to the front end's next input cell (set_next_input payload)."""
        self.payload_manager.write_payload(
            {"source": "set_next_input", "text": text, "replace": replace}
        )

    def _showtraceback(self, etype, evalue, stb):
        name = display._text(getattr(etype, "__name__", etype))
        value = display._text(evalue)
        lines = [display._text(line) for line in stb]
        self._last_error = {"ename": name, "evalue": value, "traceback": lines}
        streams.flush()
        native.error(name, value, lines)

    # -- requests (called by the C++ interpreter) -----------------------------------

    def kernel_execute(
        self, code, silent, store_history, user_expressions, allow_stdin, execution_count
    ):
        """execute_request: run `code` as cell `execution_count`; the reply content."""
        streams.ensure_usable()
        self._input_hooks.install(allow_stdin)
        self._last_error = None
        self.execution_count = execution_count
        try:
            result = self.run_cell(code, store_history=store_history, silent=silent)
        finally:
            self._input_hooks.restore()
            streams.flush()
        if result.success:
            reply = {"status": "ok"}
        else:
            reply = {"status": "error"}
            reply.update(self._last_error or self._describe(result))
        reply["user_expressions"] = self.user_expressions(user_expressions or {})
        reply["payload"] = self.payload_manager.read_payload()
        self.payload_manager.clear_payload()
        return reply

    @staticmethod
    def _describe(result):
        error = result.error_in_exec or result.error_before_exec
        return {
            "ename": type(error).__name__ if error else "Error",
            "evalue": display._text(error) if error else "",
            "traceback": [],
        }

    def kernel_complete(self, code, cursor_pos):
        """complete_request: matches for the text before `cursor_pos`."""
        if cursor_pos is None or cursor_pos < 0:
            cursor_pos = len(code)
        with provisionalcompleter():
            raw_completions = self.Completer.completions(code, cursor_pos)
            completions = list(rectify_completions(code, raw_completions))
        start = completions[0].start if completions else cursor_pos
        end = completions[0].end if completions else cursor_pos
        return {
            "status": "ok",
            "matches": [c.text for c in completions],
            "cursor_start": start,
            "cursor_end": end,
            "metadata": {
                "_jupyter_types_experimental": [
                    {"start": c.start, "end": c.end, "text": c.text, "type": c.type}
                    for c in completions
                ]
            },
        }

    def kernel_inspect(self, code, cursor_pos, detail_level=0):
        """inspect_request: the MIME bundle `obj?` (or `obj??`) would show."""
        if cursor_pos is None or cursor_pos < 0:
            cursor_pos = len(code)
        name = token_at_cursor(code, cursor_pos)
        reply = {"status": "ok", "data": {}, "metadata": {}, "found": False}
        try:
            bundle = self.object_inspect_mime(name, detail_level=detail_level)
        except KeyError:
            return reply
        if not self.enable_html_pager:
            bundle.pop("text/html", None)
        reply["data"].update(bundle)
        reply["found"] = True
        return reply

    def kernel_is_complete(self, code):
        """is_complete_request: complete / incomplete (+ indent) / invalid."""
        status, indent_spaces = self.input_transformer_manager.check_complete(code)
        reply = {"status": status}
        if status == "incomplete":
            reply["indent"] = " " * (indent_spaces or 0)
        return reply

    def kernel_history(self, method, args):
        """history_request, answered by IPython's history manager."""
        manager = self.history_manager
        raw, output = args.get("raw", True), args.get("output", False)
        if method == "tail":
            history = manager.get_tail(
                args.get("n", 10), raw=raw, output=output, include_latest=True
            )
        elif method == "range":
            session, start, stop = args.get("session", 0), args.get("start", 1), args.get("stop")
            history = manager.get_range(session, start, stop, raw=raw, output=output)
        elif method == "search":
            history = manager.search(
                args.get("pattern", "*"),
                raw=raw,
                output=output,
                n=args.get("n"),
                unique=args.get("unique", False),
            )
        else:
            history = []
        # IPython numbers the current session 0 in ranges but by its number in tails and
        # searches; the protocol wants one numbering, the real one.
        current = manager.session_number
        return {
            "status": "ok",
            "history": [[entry[0] or current, *entry[1:]] for entry in history],
        }

    def kernel_info(self):
        """kernel_info_request content (xeus adds protocol_version)."""
        return {
            "status": "ok",
            "implementation": "terra",
            "implementation_version": KERNEL_VERSION,
            "language_info": {
                "name": "python",
                "version": platform.python_version(),
                "mimetype": "text/x-python",
                "codemirror_mode": {"name": "ipython", "version": sys.version_info[0]},
                "pygments_lexer": f"ipython{sys.version_info[0]}",
                "nbconvert_exporter": "python",
                "file_extension": ".py",
            },
            "banner": f"Terra {KERNEL_VERSION}: PyTorch co-execution kernel, "
            f"Python {platform.python_version()}, IPython {_ipython_version()}",
            "help_links": [
                {"text": "Python Reference", "url": "https://docs.python.org/3/"},
                {"text": "PyTorch", "url": "https://pytorch.org/docs/stable/"},
            ],
            "debugger": False,
        }

    def kernel_shutdown(self):
        """Run what the program registered with atexit, then flush the streams."""
        try:
            atexit._run_exitfuncs()
        finally:
            streams.flush()

    # -- start ----------------------------------------------------------------------

    def load_terra_extension(self):
        """Load terra.ipython (co-execution); without it this is a plain Python kernel."""
        try:
            import importlib

            extension = importlib.import_module(EXTENSION_MODULE)
        except ImportError as error:
            if error.name in (EXTENSION_MODULE, "terra"):
                return False
            self._report_extension_failure(error)
            return False
        except Exception as error:
            self._report_extension_failure(error)
            return False
        try:
            extension.load_ipython_extension(self)
        except Exception as error:
            self._report_extension_failure(error)
            return False
        return True

    @staticmethod
    def _report_extension_failure(error):
        print(
            f"terra kernel: co-execution is off, {EXTENSION_MODULE} failed to load: "
            f"{type(error).__name__}: {error}",
            file=sys.stderr,
        )


InteractiveShellABC.register(TerraShell)


def _ipython_version():
    import IPython

    return IPython.__version__


def _shell_config():
    config = Config()
    # History lives in memory: kernels started side by side never lock one sqlite file.
    config.HistoryManager.hist_file = ":memory:"
    return config


def start_shell():
    """Create the kernel's shell (called once by the C++ interpreter at start)."""
    streams.install()
    shell = TerraShell.instance(config=_shell_config())
    kernel_comm.install(shell.kernel)
    shell.load_terra_extension()
    return shell
