"""Bad input: malformed or wrongly signed messages are rejected and logged, hostile
cells (SystemExit) give a clear result, and the kernel keeps serving."""
import json
import time
import uuid

import pytest
from jupyter_client.manager import KernelManager
from kernel_harness import KernelSession

DELIMITER = b"<IDS|MSG>"


@pytest.fixture(scope="module")
def logged_kernel(tmp_path_factory):
    """A kernel whose log (its stderr) is kept in a file."""
    log_path = tmp_path_factory.mktemp("kernel-log") / "kernel.log"
    log = open(log_path, "wb")
    km = KernelManager(kernel_name="terra")
    km.start_kernel(stderr=log)
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    session = KernelSession(km, kc)
    session.log_path = log_path
    yield session
    session.shutdown()
    log.close()


def _header(session, msg_type):
    return {
        "msg_id": uuid.uuid4().hex,
        "msg_type": msg_type,
        "username": "test",
        "session": session.session,
        "date": "2026-01-01T00:00:00.000000Z",
        "version": "5.3",
    }


def _execute_frames(session, code, *, sign=True, key_override=None):
    parts = [
        json.dumps(_header(session, "execute_request")).encode(),
        b"{}",
        b"{}",
        json.dumps({"code": code, "silent": False}).encode(),
    ]
    signer = session
    if key_override is not None:
        from jupyter_client.session import Session

        signer = Session(key=key_override)
    signature = signer.sign(parts) if sign else b""
    return [DELIMITER, signature, *parts]


def _log_text(kernel):
    return kernel.log_path.read_bytes().decode("utf-8", "replace")


def _send_raw(kernel, frames):
    socket = kernel.km.connect_shell()
    try:
        socket.send_multipart(frames)
        time.sleep(0.3)
    finally:
        socket.close(linger=0)


@pytest.mark.timeout(60)
def test_wrongly_signed_execute_request_is_rejected_and_logged(logged_kernel):
    session = logged_kernel.kc.session
    frames = _execute_frames(session, "pwned = True", key_override=b"not-the-key")
    _send_raw(logged_kernel, frames)
    result = logged_kernel.run("print('pwned' in globals())")
    assert result.status == "ok"
    assert result.stream() == "False\n"
    assert "ignature" in _log_text(logged_kernel)  # "Signatures don't match" (xeus)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "frames",
    [
        [b"garbage"],
        [DELIMITER],
        [DELIMITER, b"deadbeef", b"{", b"}", b"", b""],
        [b"\xff\xfe", DELIMITER, b"\x00" * 64, b"\xff", b"\xfe", b"\xfd", b"\xfc"],
    ],
    ids=["no-delimiter", "delimiter-only", "bad-signature-bad-json", "binary-junk"],
)
def test_malformed_frames_do_not_kill_the_kernel(logged_kernel, frames):
    before = len(_log_text(logged_kernel))
    _send_raw(logged_kernel, frames)
    assert logged_kernel.km.is_alive()
    result = logged_kernel.run("print(6 * 7)")
    assert result.status == "ok"
    assert result.stream() == "42\n"
    assert len(_log_text(logged_kernel)) > before, "the rejected message was not logged"


@pytest.mark.timeout(60)
def test_correctly_signed_but_malformed_content_is_survived(logged_kernel):
    session = logged_kernel.kc.session
    parts = [b"{not json", b"{}", b"{}", b"{}"]
    _send_raw(logged_kernel, [DELIMITER, session.sign(parts), *parts])
    parts = [json.dumps(_header(session, "no_such_request")).encode(), b"{}", b"{}", b"{}"]
    _send_raw(logged_kernel, [DELIMITER, session.sign(parts), *parts])
    assert logged_kernel.run("print('ok')").stream() == "ok\n"


@pytest.mark.timeout(60)
def test_bad_message_on_control_channel_is_survived(logged_kernel):
    socket = logged_kernel.km.connect_control()
    try:
        socket.send_multipart([DELIMITER, b"bad", b"{}", b"{}", b"{}", b"{}"])
        time.sleep(0.3)
    finally:
        socket.close(linger=0)
    assert logged_kernel.run("print('control ok')").stream() == "control ok\n"
    # The control channel still answers.
    reply = logged_kernel.kc.kernel_info(reply=True, timeout=30)
    assert reply["content"]["status"] == "ok"


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "code", ["raise SystemExit", "raise SystemExit(3)", "import sys; sys.exit('bye')", "exit()"]
)
def test_system_exit_does_not_end_the_kernel(logged_kernel, code):
    result = logged_kernel.run(code)
    if code == "exit()":
        # Like ipykernel: ask the front end to shut down (ask_exit payload); the kernel
        # itself keeps running until it is told to stop.
        assert result.status == "ok"
        assert result.reply["content"]["payload"][0]["source"] == "ask_exit"
    else:
        assert result.status == "error"
        assert result.reply["content"]["ename"] == "SystemExit"
        assert [m["content"]["ename"] for m in result.of_type("error")] == ["SystemExit"]
    assert logged_kernel.km.is_alive()
    assert logged_kernel.run("print('served')").stream() == "served\n"


@pytest.mark.timeout(60)
def test_kernel_internal_logs_stay_out_of_cell_output(logged_kernel):
    _send_raw(logged_kernel, [b"garbage-between-cells"])
    result = logged_kernel.run("print('clean')")
    assert result.stream("stdout") == "clean\n"
    assert result.stream("stderr") == ""
