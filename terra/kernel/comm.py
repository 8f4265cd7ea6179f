"""The ``comm`` package's hooks, backed by xeus' comm manager.

ipywidgets 8 and anywidget call ``comm.create_comm()`` and
``comm.get_comm_manager()``; the kernel replaces both (as ipykernel and
xeus-python do). Each :class:`TerraComm` owns a native comm registered in xeus,
which routes the front end's ``comm_open``/``comm_msg``/``comm_close`` back here
through :func:`route`.
"""
import logging

import _terra_kernel as native
import comm as comm_package
from comm.base_comm import BaseComm, CommManager

logger = logging.getLogger("terra.kernel.comm")


class TerraComm(BaseComm):
    """A comm whose messages travel through xeus (binary buffers included)."""

    def __init__(self, *args, _native=None, **kwargs):
        self._native = _native
        super().__init__(*args, **kwargs)

    @property
    def kernel(self):
        """Truthy, like ipykernel's comms, for libraries that test `comm.kernel`."""
        return _STATE.kernel

    def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
        native.flush_output()  # text printed before this message is published first
        if self._native is None:
            if msg_type != "comm_open":
                return  # closed already: nothing left to reach
            self._native = native.Comm(self.target_name, self.comm_id)
        data = {} if data is None else data
        metadata = {} if metadata is None else metadata
        if msg_type == "comm_open":
            self._native.open(data, metadata, buffers)
        elif msg_type == "comm_msg":
            self._native.send(data, metadata, buffers)
        elif msg_type == "comm_close":
            self._native.close(data, metadata, buffers)
            _STATE.retire(self._native)
            self._native = None


class TerraCommManager(CommManager):
    """The comm package's manager; targets are also registered with xeus."""

    def register_target(self, target_name, f):
        super().register_target(target_name, f)
        native.register_target(target_name)

    def unregister_target(self, target_name, f):
        native.unregister_target(target_name)
        return super().unregister_target(target_name, f)


class _CommState:
    """The one object holding this module's state: the manager and retired comms.

    Native comms are retired rather than destroyed on close, because a close may
    happen inside that comm's own message handler; they are released at the next
    routed event.
    """

    def __init__(self):
        self.manager = TerraCommManager()
        self.kernel = None
        self._retired = []

    def retire(self, native_comm):
        self._retired.append(native_comm)

    def release_retired(self):
        self._retired.clear()


_STATE = _CommState()


def create_comm(*args, **kwargs):
    """comm.create_comm replacement: a TerraComm."""
    return TerraComm(*args, **kwargs)


def get_comm_manager():
    """comm.get_comm_manager replacement: the kernel's TerraCommManager."""
    return _STATE.manager


def _on_open(target_name, native_comm, msg):
    manager = _STATE.manager
    comm = TerraComm(
        comm_id=native_comm.comm_id, primary=False, target_name=target_name, _native=native_comm
    )
    manager.register_comm(comm)
    handler = manager.targets.get(target_name)
    if handler is None:
        logger.error("No such comm target registered: %s", target_name)
    else:
        try:
            handler(comm, msg)
            return
        except Exception:
            logger.error("Exception opening comm with target: %s", target_name, exc_info=True)
    comm.close()


def _on_msg(comm_id, msg):
    comm = _STATE.manager.comms.get(comm_id)
    if comm is not None:
        comm.handle_msg(msg)


def _on_close(comm_id, msg):
    manager = _STATE.manager
    comm = manager.comms.pop(comm_id, None)
    if comm is None:
        return
    comm._closed = True
    if comm._native is not None:
        _STATE.retire(comm._native)
        comm._native = None
    comm.handle_close(msg)


def route(event, key, payload, msg):
    """Entry point of the C++ side for front-end comm events."""
    _STATE.release_retired()
    if event == "open":
        _on_open(key, payload, msg)
    elif event == "msg":
        _on_msg(key, msg)
    elif event == "close":
        _on_close(key, msg)


def install(kernel):
    """Replace the comm package's hooks and connect the native router."""
    _STATE.kernel = kernel
    comm_package.create_comm = create_comm
    comm_package.get_comm_manager = get_comm_manager
    native.set_comm_router(route)
