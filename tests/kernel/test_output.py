"""Output: fd-level capture, streaming while the cell runs, and hostile output.

What Python, C (printf) and raw os.write put on fds 1 and 2 becomes stream
messages, published while the cell is still busy; invalid UTF-8, 10 MB of output
and closed stdout give clear results and the kernel keeps serving.
"""
import pytest

LIBC = "import ctypes\nlibc = ctypes.CDLL(None)\n"


@pytest.mark.timeout(60)
def test_c_printf_and_raw_fd_writes_are_captured(kernel):
    result = kernel.run(
        LIBC
        + "libc.printf(b'from printf %d\\n', 42); libc.fflush(None)\n"
        + "import os\nos.write(1, b'from fd 1\\n'); os.write(2, b'from fd 2\\n')\n"
        + "libc.fprintf(ctypes.c_void_p.in_dll(libc, 'stderr'), b'from fprintf\\n')\n"
        + "print('from python')"
    )
    assert result.status == "ok", result.reply
    assert result.stream("stdout") == "from printf 42\nfrom fd 1\nfrom python\n"
    assert result.stream("stderr") == "from fd 2\nfrom fprintf\n"


@pytest.mark.timeout(60)
def test_printf_without_fflush_is_published_before_the_reply(kernel):
    result = kernel.run(LIBC + "libc.printf(b'no newline, no fflush')")
    assert result.stream("stdout") == "no newline, no fflush"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("writer", ["python", "c"])
def test_output_streams_while_the_cell_is_still_busy(kernel, writer):
    write = (
        "print('early', flush=True)"
        if writer == "python"
        else LIBC + "libc.printf(b'early\\n'); libc.fflush(None)"
    )
    msg_id = kernel.execute(write + "\nimport time\ntime.sleep(3)\nprint('late')")
    order = []
    result = kernel.collect(
        msg_id,
        timeout=30,
        on_message=lambda m: order.append(
            m["content"].get("text") or m["content"].get("execution_state")
        ),
    )
    assert result.status == "ok"
    # "early" arrived while the kernel was busy, long before the cell ended.
    assert order.index("early\n") < order.index("late\n") < order.index("idle")
    assert order.index("busy") < order.index("early\n")


@pytest.mark.timeout(60)
def test_output_order_with_display_is_kept(kernel):
    result = kernel.run(
        "from IPython.display import display\nprint('a')\ndisplay('b')\nprint('c')\n'd'"
    )
    kinds = [
        m["content"].get("text") or m["content"]["data"]["text/plain"] for m in result.messages
    ]
    assert kinds == ["a\n", "'b'", "c\n", "'d'"]


@pytest.mark.timeout(60)
def test_invalid_utf8_is_replaced_not_fatal(kernel):
    result = kernel.run(
        "import os, sys\nos.write(1, b'bad \\xff\\xfe end\\n')\n"
        "sys.stdout.buffer.write(b'half \\xe2\\x82 end\\n')\n"
        "os.write(2, b'\\xc3')\nos.write(2, b'\\xa9 split across writes\\n')"
    )
    assert result.status == "ok", result.reply
    assert result.stream("stdout") == "bad \ufffd\ufffd end\nhalf \ufffd end\n"
    assert result.stream("stderr") == "\u00e9 split across writes\n"
    assert kernel.run("print('next')").stream() == "next\n"


@pytest.mark.timeout(120)
def test_ten_megabytes_of_output_arrive_in_few_messages(kernel):
    result = kernel.run(
        "import sys\nline = 'x' * 99 + '\\n'\nfor _ in range(100_000):\n    sys.stdout.write(line)"
    )
    assert result.status == "ok"
    text = result.stream()
    assert len(text) == 10_000_000
    assert set(text.split("\n")[:-1]) == {"x" * 99}
    streams = result.of_type("stream")
    assert len(streams) < 1000, f"{len(streams)} stream messages for 10 MB"
    assert kernel.run("print('still here')").stream() == "still here\n"


@pytest.mark.timeout(60)
def test_closing_sys_stdout(kernel):
    result = kernel.run("import sys\nsys.stdout.close()\nprint('lost')")
    assert result.status == "error"
    assert result.reply["content"]["ename"] == "ValueError"
    assert "closed file" in result.reply["content"]["evalue"]
    assert kernel.run("print('stdout is back')").stream() == "stdout is back\n"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("fd", [1, 2])
def test_closing_fd(kernel, fd):
    result = kernel.run(f"import os\nos.close({fd})\nos.write({fd}, b'lost')")
    assert result.status == "error"
    assert result.reply["content"]["ename"] == "OSError"
    assert "Bad file descriptor" in result.reply["content"]["evalue"]
    after = kernel.run(
        LIBC + "print('py')\nlibc.printf(b'c\\n'); libc.fflush(None)\n"
        "import sys; print('err', file=sys.stderr)"
    )
    assert after.stream("stdout") == "py\nc\n"
    assert after.stream("stderr") == "err\n"
