"""Comms: ipywidgets and anywidget over the real ZMQ channels, the test acting as front end."""
import pytest


def _comm_msgs(result, comm_id=None):
    return [
        m
        for m in result.of_type("comm_msg")
        if comm_id is None or m["content"]["comm_id"] == comm_id
    ]


def _send_comm_msg(kernel, comm_id, data):
    """A comm_msg from the front end; returns its msg_id."""
    msg = kernel.kc.session.msg("comm_msg", {"comm_id": comm_id, "data": data})
    kernel.kc.shell_channel.send(msg)
    return msg["header"]["msg_id"]


def _wait_idle(kernel, msg_id):
    kernel.wait_for(
        msg_id,
        lambda m: m["msg_type"] == "status" and m["content"]["execution_state"] == "idle",
    )


@pytest.mark.timeout(90)
def test_intslider_round_trip(kernel):
    created = kernel.run(
        "import ipywidgets as widgets\nslider = widgets.IntSlider(value=3)\nslider"
    )
    assert created.status == "ok", created.reply
    opens = [
        m
        for m in created.of_type("comm_open")
        if m["content"]["data"]["state"].get("_model_name") == "IntSliderModel"
    ]
    assert len(opens) == 1
    assert opens[0]["content"]["target_name"] == "jupyter.widget"
    assert opens[0]["content"]["data"]["state"]["value"] == 3
    comm_id = opens[0]["content"]["comm_id"]
    view = created.of_type("execute_result")[0]["content"]["data"]
    assert view["application/vnd.jupyter.widget-view+json"]["model_id"] == comm_id

    # Front end -> kernel: the user drags the slider to 42.
    update = _send_comm_msg(
        kernel, comm_id, {"method": "update", "state": {"value": 42}, "buffer_paths": []}
    )
    _wait_idle(kernel, update)
    assert kernel.run("print(slider.value)").stream() == "42\n"

    # Kernel -> front end: a value set in the kernel arrives as a comm_msg update.
    changed = kernel.run("slider.value = 7")
    updates = [
        m["content"]["data"]
        for m in _comm_msgs(changed, comm_id)
        if m["content"]["data"].get("method") == "update"
    ]
    assert updates and updates[-1]["state"]["value"] == 7

    info = kernel.kc.comm_info(target_name="jupyter.widget", reply=True, timeout=30)
    assert comm_id in info["content"]["comms"]


@pytest.mark.timeout(60)
def test_front_end_opened_comm_with_binary_buffers(kernel):
    setup = kernel.run(
        "import comm\nreceived = []\n"
        "def on_open(c, msg):\n"
        "    received.append(msg['content']['data'])\n"
        "    def on_msg(m):\n"
        "        payload = bytes(m['buffers'][0])\n"
        "        c.send({'echo': m['content']['data']['n'] + 1}, buffers=[payload[::-1]])\n"
        "    c.on_msg(on_msg)\n"
        "comm.get_comm_manager().register_target('terra.test', on_open)"
    )
    assert setup.status == "ok", setup.reply
    comm_id = "terra-test-comm-1"
    open_msg = kernel.kc.session.msg(
        "comm_open", {"comm_id": comm_id, "target_name": "terra.test", "data": {"hello": 1}}
    )
    kernel.kc.shell_channel.send(open_msg)
    _wait_idle(kernel, open_msg["header"]["msg_id"])
    assert kernel.run("print(received)").stream() == "[{'hello': 1}]\n"

    msg = kernel.kc.session.msg("comm_msg", {"comm_id": comm_id, "data": {"n": 41}})
    kernel.kc.session.send(kernel.kc.shell_channel.socket, msg, buffers=[b"\x00\x01\x02\xff"])
    reply = kernel.wait_for(msg["header"]["msg_id"], lambda m: m["msg_type"] == "comm_msg")
    assert reply["content"]["data"] == {"echo": 42}
    assert bytes(reply["buffers"][0]) == b"\xff\x02\x01\x00"


@pytest.mark.timeout(60)
def test_anywidget_opens_a_comm(kernel):
    result = kernel.run(
        "import anywidget, traitlets\n"
        "class Counter(anywidget.AnyWidget):\n"
        "    _esm = 'export default { render({ model, el }) {"
        " el.textContent = model.get(\"n\"); } }'\n"
        "    n = traitlets.Int(5).tag(sync=True)\n"
        "counter = Counter()\ncounter"
    )
    assert result.status == "ok", result.reply
    opens = [m for m in result.of_type("comm_open") if m["content"]["data"]["state"].get("n") == 5]
    assert len(opens) == 1
    comm_id = opens[0]["content"]["comm_id"]
    update = _send_comm_msg(
        kernel, comm_id, {"method": "update", "state": {"n": 9}, "buffer_paths": []}
    )
    _wait_idle(kernel, update)
    assert kernel.run("print(counter.n)").stream() == "9\n"


@pytest.mark.timeout(60)
def test_output_widget_captures_text_printed_inside_it(kernel):
    result = kernel.run(
        "import ipywidgets as widgets\nout = widgets.Output()\n"
        "with out:\n    print('inside')\nprint('outside')"
    )
    assert result.status == "ok", result.reply
    # The front end routes output into the widget while its msg_id is set: the text
    # printed inside must arrive between the two msg_id updates, the rest after them.
    sequence = []
    for m in result.messages:
        if m["msg_type"] == "comm_msg" and "msg_id" in m["content"]["data"].get("state", {}):
            sequence.append("capture" if m["content"]["data"]["state"]["msg_id"] else "release")
        elif m["msg_type"] == "stream":
            sequence.append(m["content"]["text"])
    assert sequence == ["capture", "inside\n", "release", "outside\n"]
