"""A small Jupyter front end for tests: start a kernel, run cells, collect messages.

Messages are collected per request (by parent msg_id) until the kernel reports
`idle` for it, so a test sees exactly what one cell produced and in which order.
"""
import os
import queue
import signal
import time
from dataclasses import dataclass, field

from jupyter_client.manager import start_new_kernel

KERNEL_NAME = "terra"
STARTUP_TIMEOUT = 60


@dataclass
class CellResult:
    """The execute_reply of one cell and the iopub messages it caused, in order."""

    reply: dict
    messages: list = field(default_factory=list)

    @property
    def status(self):
        return self.reply["content"]["status"]

    def stream(self, name="stdout"):
        return "".join(
            m["content"]["text"]
            for m in self.messages
            if m["msg_type"] == "stream" and m["content"]["name"] == name
        )

    def of_type(self, msg_type):
        return [m for m in self.messages if m["msg_type"] == msg_type]


class KernelSession:
    """A started kernel (manager + blocking client)."""

    def __init__(self, km, kc):
        self.km = km
        self.kc = kc

    @classmethod
    def start(cls, kernel_name=KERNEL_NAME):
        km, kc = start_new_kernel(kernel_name=kernel_name, startup_timeout=STARTUP_TIMEOUT)
        return cls(km, kc)

    @property
    def pid(self):
        return self.km.provisioner.process.pid

    def execute(self, code, timeout=60, **kwargs):
        """Send an execute_request; return its msg_id."""
        return self.kc.execute(code, **kwargs)

    def collect(self, msg_id, timeout=60, on_message=None):
        """Iopub messages of request `msg_id` until it is idle, then its shell reply."""
        messages = []
        deadline = time.monotonic() + timeout
        while True:
            msg = self.kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if on_message is not None:
                on_message(msg)
            if msg["msg_type"] == "status":
                if msg["content"]["execution_state"] == "idle":
                    break
                continue
            if msg["msg_type"] != "execute_input":
                messages.append(msg)
        reply = self.shell_reply(msg_id, timeout=max(1, deadline - time.monotonic()))
        return CellResult(reply, messages)

    def shell_reply(self, msg_id, timeout=30):
        """The shell reply to request `msg_id` (others are dropped)."""
        deadline = time.monotonic() + timeout
        while True:
            reply = self.kc.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply

    def run(self, code, timeout=60, **kwargs):
        """Execute `code` and wait for it: a CellResult."""
        return self.collect(self.execute(code, **kwargs), timeout=timeout)

    def wait_for(self, msg_id, predicate, timeout=30):
        """First iopub message of request `msg_id` satisfying predicate (others dropped)."""
        deadline = time.monotonic() + timeout
        while True:
            msg = self.kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
            if msg["parent_header"].get("msg_id") == msg_id and predicate(msg):
                return msg

    def interrupt_with_signal(self):
        """SIGINT to the kernel's process group, as jupyter_client does (interrupt_mode signal)."""
        os.killpg(os.getpgid(self.pid), signal.SIGINT)

    def interrupt_with_message(self):
        """An interrupt_request on the control channel (interrupt_mode message)."""
        msg = self.kc.session.msg("interrupt_request", {})
        self.kc.control_channel.send(msg)
        return msg["header"]["msg_id"]

    def drain_iopub(self, seconds=0.2):
        """Drop iopub messages that are still in flight."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                self.kc.get_iopub_msg(timeout=0.05)
            except queue.Empty:
                pass

    def shutdown(self):
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=False)
