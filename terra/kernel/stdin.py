"""``input()`` and ``getpass.getpass()`` answered by the front end (stdin channel)."""
import builtins
import getpass as _getpass

import _terra_kernel as native
from IPython.core.error import StdinNotImplementedError

from terra.kernel import streams


def raw_input(prompt=""):
    """input() for a front end that allows stdin: sends input_request, waits the reply."""
    streams.flush()
    native.flush_output()
    return native.input_request(str(prompt), False)


def getpass(prompt="Password: ", stream=None):
    """getpass.getpass() through the front end; the typed text is not echoed."""
    streams.flush()
    native.flush_output()
    return native.input_request(str(prompt), True)


def _no_stdin(*args, **kwargs):
    raise StdinNotImplementedError(
        "input() was called, but this frontend does not support input requests."
    )


class InputHooks:
    """Installs input()/getpass() for one cell and restores the originals after it."""

    def __init__(self):
        self._saved = None

    def install(self, allow_stdin):
        self._saved = (builtins.input, _getpass.getpass)
        if allow_stdin:
            builtins.input, _getpass.getpass = raw_input, getpass
        else:
            builtins.input, _getpass.getpass = _no_stdin, _no_stdin

    def restore(self):
        if self._saved is not None:
            builtins.input, _getpass.getpass = self._saved
            self._saved = None
