"""JupyterLab 4 on loopback, driven by the system Chromium through Playwright.

Fixtures (registered for every test under tests/ by tests/conftest.py, so a test
only has to name them as arguments):

  jupyterlab_server  (session)  a `LabServer`: JupyterLab on 127.0.0.1, a free port,
                     token auth, a temporary root dir (`server.root_dir`, put
                     notebooks there to open them), temporary HOME / config /
                     runtime / data dirs, and JUPYTER_PATH set to the venv's
                     share/jupyter so the `terra` kernelspec is found. The whole
                     process tree is shut down at the end of the session, even
                     after failures. Server log: artifacts/browser/jupyterlab.log.
  chromium_browser   (module)   headless /usr/bin/chromium (never a downloaded one).
  lab_page           (function) a `LabPage`: a fresh browser context on the Lab UI,
                     launcher shown, with helpers (new notebook from a launcher
                     card, run a cell and read its output, screenshots into
                     artifacts/browser/). On teardown it saves
                     `FAILED-<test>.png` if the test failed, and shuts down the
                     kernels the test started.

Reuse from another suite, e.g. tests/visualizer/test_widget_browser.py:

    def test_graph_widget_renders(lab_page, kernel_display_name):
        lab_page.new_notebook(kernel_display_name)
        lab_page.run_cell(CODE_THAT_DISPLAYS_THE_WIDGET)
        widget = lab_page.page.locator(".YOUR-WIDGET-CLASS svg")
        widget.wait_for(timeout=lab_page.timeout_ms)
        lab_page.screenshot("visualizer-graph")

or write a notebook into `jupyterlab_server.root_dir` and `lab_page.open_notebook(name)`.
Helpers beyond these are welcome here rather than copied into another suite.

`lab_page.page` is the Playwright `Page` for anything the helpers do not cover.
Playwright's sync API owns an event loop while the browser is open, which is why
`chromium_browser` is module-scoped: keep asyncio-based clients (nbclient) in test
modules that do not use these fixtures.
"""
import dataclasses
import json
import os
import pathlib
import re
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

CHROMIUM = "/usr/bin/chromium"
SERVER_START_TIMEOUT_S = 90
SERVER_START_ATTEMPTS = 3  # a free port can be taken between choosing and binding it
SERVER_STOP_TIMEOUT_S = 20
UI_TIMEOUT_MS = 90_000
VIEWPORT = {"width": 1400, "height": 900}


def free_loopback_port():
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def proc_stat_fields(pid):
    """Fields of /proc/PID/stat after the command name (index 0 is the state), or None."""
    try:
        return pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def descendant_pids(root_pid):
    """Pids of every live descendant of root_pid (from /proc)."""
    children = {}
    for entry in pathlib.Path("/proc").iterdir():
        fields = proc_stat_fields(entry.name) if entry.name.isdigit() else None
        if fields:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, frontier = [], [root_pid]
    while frontier:
        kids = children.get(frontier.pop(), [])
        found.extend(kids)
        frontier.extend(kids)
    return found


@dataclasses.dataclass(frozen=True)
class ProcessRef:
    """A process identified by pid and start time, so that a recycled pid is never hit."""

    pid: int
    start_time: str

    @classmethod
    def of(cls, pid):
        fields = proc_stat_fields(pid)
        return cls(pid, fields[19]) if fields else None

    def kill_group(self):
        """SIGKILLs the process group of this process if the process still lives."""
        fields = proc_stat_fields(self.pid)
        if fields and fields[19] == self.start_time and fields[0] != "Z":
            try:
                os.killpg(int(fields[2]), signal.SIGKILL)
            except ProcessLookupError:
                pass


@dataclasses.dataclass
class LabServer:
    """A running JupyterLab: where it listens, its token, its root directory."""

    process: subprocess.Popen
    port: int
    token: str
    root_dir: pathlib.Path
    log_path: pathlib.Path

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.port}/"

    def url(self, path="lab"):
        """Browser URL of `path` (e.g. `lab`, `lab/tree/x.ipynb`) with the token."""
        separator = "&" if "?" in path else "?"
        return f"{self.base_url}{path}{separator}token={self.token}"

    def api(self, path, method="GET"):
        """Calls the REST API (`api/kernels`, ...); returns the decoded JSON or None."""
        request = urllib.request.Request(
            self.base_url + path, method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def is_serving(self):
        try:
            return self.api("api/status") is not None
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def shutdown_kernels(self):
        """Shuts down every kernel the server runs (best effort)."""
        try:
            for kernel in self.api("api/kernels"):
                self.api(f"api/kernels/{kernel['id']}", method="DELETE")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass


def isolated_jupyter_env(scratch, base_env):
    """Environment for the server: nothing of the user's Jupyter/IPython set-up leaks in."""
    env = dict(base_env)
    dirs = {
        "HOME": "home",
        "JUPYTER_CONFIG_DIR": "config",
        "JUPYTER_DATA_DIR": "data",
        "JUPYTER_RUNTIME_DIR": "runtime",
        "JUPYTERLAB_SETTINGS_DIR": "lab-settings",
        "JUPYTERLAB_WORKSPACES_DIR": "lab-workspaces",
        "IPYTHONDIR": "ipython",
        "MPLCONFIGDIR": "matplotlib",
    }
    for variable, name in dirs.items():
        path = scratch / name
        path.mkdir(parents=True, exist_ok=True)
        env[variable] = str(path)
    # Offline and quiet: no "fetch Jupyter news?" toast covering the page.
    notification = scratch / "lab-settings" / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True, exist_ok=True)
    (notification / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false", "checkForUpdates": false}'
    )
    env.pop("JUPYTER_TOKEN", None)
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    return env


def start_lab(venv_bin, root_dir, env, log_file):
    """Launches `jupyter lab` in its own process group; returns (process, port, token)."""
    port, token = free_loopback_port(), secrets.token_hex(24)
    command = [
        str(venv_bin / "jupyter"), "lab",
        "--no-browser",
        "--allow-root",  # the test machines run as root; harmless otherwise
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root_dir}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",  # offline: never query PyPI
    ]
    process = subprocess.Popen(
        command, cwd=root_dir, env=env, stdin=subprocess.DEVNULL,
        stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
    )
    return process, port, token


def wait_until_serving(server):
    """True once the server answers its REST API; False if it exited first (e.g. its
    port was taken in the meantime). Fails the test if it does neither in time."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        if server.is_serving():
            return True
        time.sleep(0.2)
    pytest.fail(
        f"jupyter lab did not serve within {SERVER_START_TIMEOUT_S}s; see {server.log_path}"
    )


def stop_lab(server):
    """Shuts the server down, then kills whatever of its process tree survived.

    Kernels run in sessions of their own (jupyter_client starts them with
    start_new_session), so killing the server's process group alone would orphan
    them: the tree is noted first and each survivor's group is killed at the end.
    """
    tree = [ref for ref in map(ProcessRef.of, descendant_pids(server.process.pid)) if ref]
    if server.process.poll() is None:
        server.shutdown_kernels()
        try:
            server.api("api/shutdown", method="POST")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        try:
            server.process.wait(timeout=SERVER_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            # Not reaped yet, so its pid (= its group id) cannot have been recycled.
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait()
    for ref in tree:
        ref.kill_group()


@pytest.fixture(scope="session")
def jupyterlab_server(tmp_path_factory, jupyter_env, venv_bin, artifacts_dir):
    """JupyterLab serving on loopback for the whole session (see module docstring)."""
    scratch = tmp_path_factory.mktemp("jupyterlab")
    root_dir = scratch / "root"
    root_dir.mkdir()
    log_dir = artifacts_dir / "browser"
    log_dir.mkdir(exist_ok=True)
    log_path = log_dir / "jupyterlab.log"
    env = isolated_jupyter_env(scratch, jupyter_env)
    for _ in range(SERVER_START_ATTEMPTS):
        with open(log_path, "wb") as log_file:
            process, port, token = start_lab(venv_bin, root_dir, env, log_file)
        server = LabServer(process, port, token, root_dir, log_path)
        serving = False
        try:
            serving = wait_until_serving(server)
        finally:
            if not serving:
                stop_lab(server)
        if serving:
            break
    else:
        pytest.fail(f"jupyter lab exited with {process.returncode}; see {log_path}")
    try:
        yield server
    finally:
        stop_lab(server)


@pytest.fixture(scope="module")
def chromium_browser():
    """Headless system Chromium (Playwright sync API); closed after the module."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        try:
            yield browser
        finally:
            browser.close()


class LabPage:
    """One browser tab on JupyterLab, with the few UI steps tests need."""

    def __init__(self, page, server, screenshot_dir):
        self.page = page
        self.server = server
        self.screenshot_dir = screenshot_dir
        self.timeout_ms = UI_TIMEOUT_MS

    def open_lab(self):
        """Loads the Lab UI with a fresh workspace and waits for the launcher."""
        self.page.goto(self.server.url("lab?reset"))
        self.page.locator(".jp-Launcher").first.wait_for(state="visible")

    def launcher_card(self, display_name, category="Notebook"):
        """The launcher card that opens a `category` item with kernel `display_name`."""
        cards = self.page.locator(f'.jp-Launcher .jp-LauncherCard[data-category="{category}"]')
        return cards.filter(has=self.page.get_by_text(display_name, exact=True))

    def new_notebook(self, display_name):
        """Clicks the launcher's notebook card for `display_name`; waits until the
        notebook's kernel is that one and idle. Returns the notebook panel locator."""
        card = self.launcher_card(display_name)
        card.wait_for(state="visible")
        card.click()
        panel = self.notebook_panel()
        panel.locator(".jp-Notebook .jp-Cell").first.wait_for(state="visible")
        kernel_name = panel.locator(".jp-NotebookPanel-toolbar .jp-Toolbar-kernelName")
        from playwright.sync_api import expect

        expect(kernel_name).to_have_text(display_name, timeout=self.timeout_ms)
        self.wait_for_kernel_idle()
        return panel

    def open_notebook(self, relative_path):
        """Opens a notebook file under the server's root dir; waits until its kernel
        (the one its metadata names) is idle. Returns the notebook panel locator."""
        self.page.goto(self.server.url(f"lab/tree/{relative_path}?reset"))
        panel = self.notebook_panel()
        panel.locator(".jp-Notebook .jp-Cell").first.wait_for(state="visible")
        self.wait_for_kernel_idle()
        return panel

    def notebook_panel(self):
        """The notebook panel currently shown in the main area."""
        return self.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)").last

    def wait_for_kernel_idle(self):
        indicator = self.notebook_panel().locator(
            '.jp-NotebookPanel-toolbar .jp-Notebook-ExecutionIndicator[data-status="idle"]'
        )
        indicator.wait_for(state="attached", timeout=self.timeout_ms)

    def run_cell(self, code):
        """Types `code` into the notebook's last cell, runs it with Shift+Enter, waits
        for its execution count and an idle kernel; returns the cell's output text."""
        from playwright.sync_api import expect

        cells = self.notebook_panel().locator(".jp-Notebook .jp-CodeCell")
        # Pinned by index: Shift+Enter appends a new cell, which `.last` would follow.
        cell = cells.nth(cells.count() - 1)
        editor = cell.locator(".cm-content")
        editor.click()
        # insert_text types the code as one input event: no auto-indent or
        # bracket-closing of the editor rewrites what the test means to run.
        self.page.keyboard.insert_text(code)
        expect(editor).to_contain_text(code.splitlines()[0])
        self.page.keyboard.press("Shift+Enter")
        expect(cell.locator(".jp-InputArea-prompt")).to_have_text(
            re.compile(r"\[\d+\]:"), timeout=self.timeout_ms
        )
        self.wait_for_kernel_idle()
        return cell.locator(".jp-OutputArea").inner_text()

    def screenshot(self, name):
        """Saves a full-page screenshot as artifacts/browser/<name>.png; returns the path."""
        path = self.screenshot_dir / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keeps each phase's report on the item, so lab_page's teardown knows a failure."""
    report = yield
    setattr(item, f"terra_report_{report.when}", report)
    return report


def save_failure_screenshot(lab, node_name):
    safe_name = re.sub(r"[^A-Za-z0-9_.-]+", "_", node_name)
    try:
        lab.screenshot(f"FAILED-{safe_name}")
    except Exception:  # the page may be gone; the failure itself is reported anyway
        pass


@pytest.fixture
def lab_page(request, jupyterlab_server, chromium_browser, artifacts_dir):
    """A fresh browser context on JupyterLab with the launcher shown (see module docstring)."""
    screenshot_dir = artifacts_dir / "browser"
    screenshot_dir.mkdir(exist_ok=True)
    context = chromium_browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(UI_TIMEOUT_MS)
    lab = LabPage(context.new_page(), jupyterlab_server, screenshot_dir)
    try:
        try:
            lab.open_lab()
        except Exception:
            save_failure_screenshot(lab, request.node.name)
            raise
        yield lab
        if getattr(getattr(request.node, "terra_report_call", None), "failed", False):
            save_failure_screenshot(lab, request.node.name)
    finally:
        context.close()
        jupyterlab_server.shutdown_kernels()
