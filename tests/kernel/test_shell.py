"""IPython behaviour of the Terra kernel, compared with what ipykernel gives."""
import base64
import re

import pytest

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def plain(text):
    """Text without ANSI colour codes."""
    return ANSI.sub("", text)


@pytest.mark.timeout(60)
def test_environment_is_the_project_venv(kernel):
    import sys

    result = kernel.run(
        "import sys, torch\nprint(sys.executable)\nprint(sys.prefix)\n"
        "print(torch.__version__)\nimport terra.kernel\nprint(terra.kernel.__name__)"
    )
    assert result.status == "ok", result.reply
    executable, prefix, torch_version, module = result.stream().splitlines()
    assert prefix == sys.prefix  # the venv pytest runs in
    assert executable.startswith(sys.prefix)
    import torch

    assert torch_version == torch.__version__
    assert module == "terra.kernel"


@pytest.mark.timeout(60)
def test_execution_counts_and_out_history(kernel):
    first = kernel.run("10 * 4")
    second = kernel.run("Out[%d] + 2" % first.reply["content"]["execution_count"])
    first_count = first.reply["content"]["execution_count"]
    assert second.reply["content"]["execution_count"] == first_count + 1
    assert second.of_type("execute_result")[0]["content"]["data"]["text/plain"] == "42"
    assert second.of_type("execute_result")[0]["content"]["execution_count"] == (
        second.reply["content"]["execution_count"]
    )


@pytest.mark.timeout(60)
def test_traceback_points_at_the_cell_line(kernel):
    result = kernel.run("a = 1\nb = 0\nc = a / b\n")
    assert result.status == "error"
    content = result.reply["content"]
    assert (content["ename"], content["evalue"]) == ("ZeroDivisionError", "division by zero")
    text = plain("\n".join(content["traceback"]))
    assert "Cell In[%d], line 3" % content["execution_count"] in text
    assert "----> 3 c = a / b" in text
    error = result.of_type("error")[0]["content"]
    assert error["traceback"] == content["traceback"]


@pytest.mark.timeout(60)
def test_magics(kernel):
    timed = kernel.run("%time sum(range(1000))")
    assert "Wall time" in timed.stream()
    timeit = kernel.run("%%timeit -n 3 -r 2\nsum(range(100))")
    assert "per loop" in timeit.stream()
    shell = kernel.run("!echo from-shell")
    assert shell.stream().strip() == "from-shell"


@pytest.mark.timeout(60)
def test_double_question_mark_gives_a_pager_payload(kernel):
    kernel.run("def documented(x):\n    'Doubles x.'\n    return 2 * x")
    result = kernel.run("documented??")
    payload = result.reply["content"]["payload"]
    assert payload[0]["source"] == "page"
    assert "return 2 * x" in plain(payload[0]["data"]["text/plain"])


@pytest.mark.timeout(60)
def test_inspect_request_detail_levels(kernel):
    kernel.run("def documented(x):\n    'Doubles x.'\n    return 2 * x")
    brief = kernel.kc.inspect("documented", detail_level=0, reply=True, timeout=30)["content"]
    full = kernel.kc.inspect("documented", detail_level=1, reply=True, timeout=30)["content"]
    assert brief["found"] and "Doubles x." in plain(brief["data"]["text/plain"])
    assert "return 2 * x" in plain(full["data"]["text/plain"])
    missing = kernel.kc.inspect("no_such_name_here", reply=True, timeout=30)["content"]
    assert missing["status"] == "ok" and not missing["found"]


@pytest.mark.timeout(60)
def test_input_and_getpass_over_stdin(kernel):
    msg_id = kernel.execute(
        "name = input('name? ')\nimport getpass\nsecret = getpass.getpass('pw: ')\n"
        "print(name.upper(), len(secret))",
        allow_stdin=True,
    )
    for expected_prompt, password, answer in [("name? ", False, "terra"), ("pw: ", True, "s3cret")]:
        request = kernel.kc.get_stdin_msg(timeout=30)
        assert request["content"]["prompt"] == expected_prompt
        assert request["content"]["password"] is password
        kernel.kc.input(answer)
    result = kernel.collect(msg_id)
    assert result.status == "ok", result.reply
    assert result.stream() == "TERRA 6\n"


@pytest.mark.timeout(60)
def test_input_without_stdin_is_a_clear_error(kernel):
    result = kernel.run("input('x')", allow_stdin=False)
    assert result.status == "error"
    assert result.reply["content"]["ename"] == "StdinNotImplementedError"


@pytest.mark.timeout(60)
def test_user_expressions(kernel):
    result = kernel.run("u = 20", user_expressions={"double": "u * 2", "bad": "1/0"})
    expressions = result.reply["content"]["user_expressions"]
    assert expressions["double"]["status"] == "ok"
    assert expressions["double"]["data"]["text/plain"] == "40"
    assert expressions["bad"]["status"] == "error"


@pytest.mark.timeout(120)
def test_matplotlib_figure_is_shown_inline_at_cell_end(kernel):
    result = kernel.run(
        "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\nprint('plotted')"
    )
    assert result.status == "ok", result.reply
    images = [m for m in result.of_type("display_data") if "image/png" in m["content"]["data"]]
    assert len(images) == 1
    png = base64.b64decode(images[0]["content"]["data"]["image/png"])
    assert png.startswith(b"\x89PNG")
    # The text printed in the cell came first, the figure after it.
    assert result.messages.index(images[0]) > 0


@pytest.mark.timeout(60)
def test_rich_reprs(kernel):
    result = kernel.run(
        "class Rich:\n"
        "    def _repr_html_(self): return '<i>rich</i>'\n"
        "    def _repr_png_(self): return b'\\x89PNG\\r\\n\\x1a\\nfake'\n"
        "Rich()"
    )
    data = result.of_type("execute_result")[0]["content"]["data"]
    assert data["text/html"] == "<i>rich</i>"
    assert base64.b64decode(data["image/png"]) == b"\x89PNG\r\n\x1a\nfake"


@pytest.mark.timeout(60)
def test_display_update(kernel):
    result = kernel.run(
        "from IPython.display import display\nh = display('one', display_id=True)\nh.update('two')"
    )
    shown = result.of_type("display_data")[0]["content"]
    updated = result.of_type("update_display_data")[0]["content"]
    assert shown["transient"]["display_id"] == updated["transient"]["display_id"]
    assert updated["data"]["text/plain"] == "'two'"


@pytest.mark.timeout(60)
def test_terra_extension_failures_are_reported_once_and_tolerated(kernel):
    result = kernel.run(
        "import sys, types\n"
        "saved = sys.modules.get('terra.ipython')\n"
        "broken = types.ModuleType('terra.ipython')\n"
        "def load_ipython_extension(shell): raise RuntimeError('boom')\n"
        "broken.load_ipython_extension = load_ipython_extension\n"
        "sys.modules['terra.ipython'] = broken\n"
        "loaded_broken = get_ipython().load_terra_extension()\n"
        "sys.modules['terra.ipython'] = None  # import now fails with ModuleNotFoundError\n"
        "loaded_missing = get_ipython().load_terra_extension()\n"
        "if saved is None: del sys.modules['terra.ipython']\n"
        "else: sys.modules['terra.ipython'] = saved\n"
        "print(loaded_broken, loaded_missing)"
    )
    assert result.status == "ok", result.reply
    assert result.stream("stdout") == "False False\n"
    assert result.stream("stderr").count("terra.ipython failed to load: RuntimeError: boom") == 1


@pytest.mark.timeout(60)
def test_background_thread_output_reaches_the_front_end(kernel):
    result = kernel.run(
        "import threading, time\n"
        "t = threading.Thread(target=lambda: print('from thread', flush=True))\n"
        "t.start(); t.join()"
    )
    assert result.stream() == "from thread\n"
