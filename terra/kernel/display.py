"""Rich output of the kernel: ``display()``, ``clear_output()`` and ``Out[n]``.

Both classes hand the formatted MIME bundles to the C++ side, which first
publishes the text output written so far (so output keeps its order) and then
the message itself.
"""
import base64

import _terra_kernel as native
from IPython.core.displayhook import DisplayHook
from IPython.core.displaypub import DisplayPublisher

from terra.kernel import streams


def _text(value):
    """A str that encodes to UTF-8 (lone surrogates replaced)."""
    text = value if isinstance(value, str) else str(value)
    return text.encode("utf-8", "replace").decode("utf-8")


def jsonable_bundle(data):
    """A MIME bundle whose values JSON can carry: binary data becomes base64 text."""
    clean = {}
    for mime, value in (data or {}).items():
        if isinstance(value, (bytes, bytearray, memoryview)):
            raw = bytes(value)
            if mime.startswith("text/") or mime.endswith(("+json", "/json", "+xml", "/xml")):
                value = raw.decode("utf-8", "replace")
            else:
                value = base64.b64encode(raw).decode("ascii")
        clean[_text(mime)] = value
    return clean


def _flush_python_streams():
    streams.flush()


class TerraDisplayPublisher(DisplayPublisher):
    """Publishes display_data / update_display_data / clear_output messages."""

    def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kwargs):
        _flush_python_streams()
        native.display_data(jsonable_bundle(data), metadata or {}, transient or {}, bool(update))

    def clear_output(self, wait=False):
        _flush_python_streams()
        native.clear_output(bool(wait))


class TerraDisplayHook(DisplayHook):
    """Publishes a cell's value as its execute_result (``Out[n]``)."""

    def start_displayhook(self):
        self._bundle = None
        self._bundle_metadata = None

    def write_output_prompt(self):
        pass

    def write_format_data(self, format_dict, md_dict=None):
        self._bundle = format_dict
        self._bundle_metadata = md_dict

    def finish_displayhook(self):
        _flush_python_streams()
        if self._bundle:
            native.execute_result(
                int(self.prompt_count), jsonable_bundle(self._bundle), self._bundle_metadata or {}
            )
        self._bundle = None
        self._bundle_metadata = None
