"""Interrupts: SIGINT and interrupt_request raise KeyboardInterrupt in the running cell.

The kernel survives each one and the next cell runs; an interrupt between cells
is ignored.
"""
import time

import pytest

INTERRUPTS = 20
SLEEPING_CELL = "import time\nprint('started', flush=True)\ntime.sleep(30)\nprint('not reached')"
BUSY_CELL = "print('started', flush=True)\nwhile True:\n    pass"


def _started(msg):
    return msg["msg_type"] == "stream" and "started" in msg["content"]["text"]


def _interrupt_running_cell(kernel, code, how):
    msg_id = kernel.execute(code)
    kernel.wait_for(msg_id, _started, timeout=30)  # the cell is running now
    began = time.monotonic()
    if how == "signal":
        kernel.interrupt_with_signal()
    else:
        kernel.interrupt_with_message()
    result = kernel.collect(msg_id, timeout=30)
    return result, time.monotonic() - began


@pytest.mark.timeout(150)
def test_twenty_interrupts_each_followed_by_a_working_cell(kernel):
    for i in range(INTERRUPTS):
        how = "signal" if i % 2 == 0 else "message"
        code = SLEEPING_CELL if i % 4 < 2 else BUSY_CELL
        result, latency = _interrupt_running_cell(kernel, code, how)
        assert result.status == "error", (i, how, result.reply)
        assert result.reply["content"]["ename"] == "KeyboardInterrupt", (i, how)
        assert [m["content"]["ename"] for m in result.of_type("error")] == ["KeyboardInterrupt"]
        assert "not reached" not in result.stream()
        assert latency < 10, f"interrupt {i} ({how}) took {latency:.1f}s"

        follow_up = kernel.run(f"print({i} * 2)")
        assert follow_up.status == "ok"
        assert follow_up.stream() == f"{i * 2}\n"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["signal", "message"])
def test_interrupt_between_cells_is_ignored(kernel, how):
    if how == "signal":
        kernel.interrupt_with_signal()
    else:
        kernel.interrupt_with_message()
    time.sleep(0.5)
    result = kernel.run("x_after_idle_interrupt = 41 + 1\nprint(x_after_idle_interrupt)")
    assert result.status == "ok", result.reply
    assert result.stream() == "42\n"


@pytest.mark.timeout(120)
def test_interrupt_during_input_request(kernel):
    # The interrupt is sent as soon as the request arrives: it often lands before the kernel
    # blocks on the reply (it did in about 1 run in 15, and the cell then hung); repeated to
    # meet that window.
    for attempt in range(12):
        msg_id = kernel.execute("answer = input('say: ')", allow_stdin=True)
        request = kernel.kc.get_stdin_msg(timeout=30)
        assert request["content"]["prompt"] == "say: "
        kernel.interrupt_with_message()
        result = kernel.collect(msg_id, timeout=8)
        assert result.reply["content"]["ename"] == "KeyboardInterrupt", attempt
        assert kernel.run("print('alive')").stream() == "alive\n"


@pytest.mark.timeout(90)
@pytest.mark.parametrize("how", ["signal", "message"])
def test_interrupt_lands_after_a_running_torch_op_returns(kernel, how):
    # The kernel's part only: co-execution is switched off for this loop, because the
    # engine's abort path can hang on an interrupted iteration (GraphRunner::wait_idle,
    # reported to the engine's owner); the kernel must not depend on it here.
    code = (
        "import torch\ntry:\n    import terra; terra.disable()\nexcept Exception:\n    pass\n"
        "a = torch.randn(400, 400)\nprint('started', flush=True)\nwhile True:\n    b = a @ a"
    )
    result, latency = _interrupt_running_cell(kernel, code, how)
    assert result.reply["content"]["ename"] == "KeyboardInterrupt"
    assert latency < 10
    check = kernel.run(
        "print(torch.equal(a @ a, b))\ntry:\n    terra.enable()\nexcept Exception:\n    pass"
    )
    assert check.stream() == "True\n"


@pytest.mark.timeout(90)
@pytest.mark.parametrize("how", ["signal", "message"])
def test_interrupt_of_a_coexecuted_torch_loop(kernel, how):
    # The same loop with co-execution on: Python runs ahead of the GraphRunner, so the
    # interrupt must not wait for an unbounded queue to drain (the engine's queue bounds).
    code = (
        "import torch, terra\nterra.enable(); terra.reset()\na = torch.randn(400, 400)\ni = 0\n"
        "while True:\n    b = a @ a\n    i += 1\n"
        "    if i == 50:\n        print('started', flush=True)"  # co-executing by now
    )
    result, latency = _interrupt_running_cell(kernel, code, how)
    assert result.reply["content"]["ename"] == "KeyboardInterrupt"
    assert latency < 10
    check = kernel.run(
        "print(torch.equal(a @ a, b), terra.stats()['iterations_coexecuted'] > 0)"
    )
    assert check.stream() == "True True\n"


@pytest.mark.timeout(60)
def test_interrupt_keeps_state_of_finished_statements(kernel):
    msg_id = kernel.execute(
        "import time\ndone = []\nfor k in range(100):\n    done.append(k)\n"
        "    if k == 3: print('started', flush=True)\n    time.sleep(0.05 if k < 3 else 30)"
    )
    kernel.wait_for(msg_id, _started, timeout=30)
    kernel.interrupt_with_signal()
    result = kernel.collect(msg_id, timeout=30)
    assert result.reply["content"]["ename"] == "KeyboardInterrupt"
    assert kernel.run("print(done)").stream() == "[0, 1, 2, 3]\n"
