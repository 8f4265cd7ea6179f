"""``sys.stdout`` and ``sys.stderr`` of the kernel.

The kernel points file descriptors 1 and 2 at pipes that a C++ reader thread turns
into ``stream`` messages, so Python output and what C code writes to the same
descriptors share one path and keep their order. These streams therefore only
need to write to the descriptors, unbuffered, and never close them.
"""
import io
import os
import sys


class _FdWriter(io.RawIOBase):
    """Raw binary writer on a file descriptor that writes everything it is given.

    flush() has nothing to do: the bytes are in the pipe, and the reader thread
    publishes them within its flush interval. Messages the kernel publishes itself
    (display, comm, error) first drain the pipe, which keeps their order.
    """

    def __init__(self, fd):
        super().__init__()
        self._fd = fd

    def writable(self):
        return True

    def fileno(self):
        return self._fd

    def isatty(self):
        return False

    def write(self, data):
        view = memoryview(data).cast("B")
        written = 0
        while written < len(view):
            written += os.write(self._fd, view[written:])
        return written


def make_stream(fd):
    """A text stream writing UTF-8 to `fd` with no buffering; closing it keeps `fd`."""
    return io.TextIOWrapper(
        _FdWriter(fd),
        encoding="utf-8",
        errors="backslashreplace",
        write_through=True,
    )


def _unusable(stream):
    return stream is None or getattr(stream, "closed", False)


def install():
    """Make sys.stdout/sys.stderr (and their ``__std*__`` originals) the kernel streams."""
    sys.stdout = sys.__stdout__ = make_stream(1)
    sys.stderr = sys.__stderr__ = make_stream(2)


def ensure_usable():
    """Replace a closed (or removed) sys.stdout/sys.stderr by a fresh kernel stream.

    Called before each cell, so that ``sys.stdout.close()`` in one cell does not
    break the next one.
    """
    if _unusable(sys.stdout):
        sys.stdout = make_stream(1)
    if _unusable(sys.stderr):
        sys.stderr = make_stream(2)


def flush():
    """Flush sys.stdout and sys.stderr, whatever user code replaced them with."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # closed, or a user object without flush(): nothing to flush
            pass
