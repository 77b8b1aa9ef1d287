"""The course in a real browser: JupyterLab started as `make lab` starts it, driven in headless
Chromium through Playwright, checked for what a learner sees.

Debian's `chromium` package is the browser (nothing is downloaded at run time); where it is
missing the whole module is skipped with one line. Set CHROMIUM=/path/to/chromium to use another
Chromium build. A failing test leaves a screenshot of the page in its temporary folder.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
if not CHROMIUM and os.environ.get("COURSE_BROWSER_TEST") == "required":  # set by .ci/run
    pytest.fail("browser test: Chromium not found, and COURSE_BROWSER_TEST=required", pytrace=False)
if not CHROMIUM:
    pytest.skip("browser test: Chromium not found (apt-get install chromium, or set CHROMIUM=...); "
                "the course itself does not need it", allow_module_level=True)
playwright_api = pytest.importorskip("playwright.sync_api", reason="browser test: playwright "
                                     "is not installed (it is in the course's test extra)")

LESSON = "notebooks/02_affine_quantization.ipynb"
EXERCISE = "exercises/02_affine_quantization.ipynb"
SERVER_START_S = 120  # first start also compiles JupyterLab's settings: slow on a busy 2-core CPU
RUN_ALL_S = 240       # lesson 02 runs in about 10 s alone; the kernel also starts and imports

# Settings for this test's JupyterLab only (its own config folder, not the learner's): no
# autosave, so running cells never rewrites the course's notebooks; every cell kept in the page;
# no news or update pop-ups over the menus.
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification": {"checkForUpdates": False,
                                                     "fetchNews": "false"},
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """`make lab` on a free port with a token and no browser; yields (base URL, token, log)."""
    home = tmp_path_factory.mktemp("lab")
    for plugin, values in LAB_SETTINGS.items():
        f = home / "config" / "lab" / "user-settings" / f"{plugin}.jupyterlab-settings"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(values))
    # JupyterLab makes a checkpoint of each notebook it opens: keep them out of the course folder
    (home / "config" / "jupyter_server_config.json").write_text(json.dumps(
        {"FileCheckpoints": {"checkpoint_dir": str(home / "checkpoints")}}))
    port, token = _free_port(), secrets.token_hex(16)
    args = [f"--no-browser --ip=127.0.0.1 --port={port} --ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}"]
    if os.geteuid() == 0:
        args.append("--allow-root")  # CI runs as root; `make lab` refuses root without it
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(home / "config"),
               JUPYTER_DATA_DIR=str(home / "data"), JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               IPYTHONDIR=str(home / "ipython"))
    log = (home / "lab.log").open("w")
    proc = subprocess.Popen(["make", "-s", "lab", "LAB_ARGS=" + " ".join(args)], cwd=ROOT,
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"make lab exited with {proc.returncode}:\n{(home / 'lab.log').read_text()}")
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer in {SERVER_START_S} s:\n"
                                f"{(home / 'lab.log').read_text()}")
                time.sleep(0.5)
        yield base, token, home / "lab.log"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server shuts its kernels down
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        _kill_kernels_of(home / "runtime")


def _kill_kernels_of(runtime: Path) -> None:
    """End kernels the server left behind (they run in their own sessions): those whose
    connection file is in this test's runtime folder."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(runtime).encode() in cmdline.read_bytes():
                os.kill(int(cmdline.parent.name), signal.SIGKILL)
        except OSError:
            continue


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser, tmp_path):
    """A fresh page; on a failure inside `shot(page)` a screenshot lands in tmp_path."""
    pg = browser.new_page(viewport={"width": 1400, "height": 900})
    pg.set_default_timeout(60_000)
    yield pg
    pg.close()


@contextmanager
def shot(page, tmp_path: Path, lab):
    """Save a screenshot of the page in the test's temporary folder when the block fails, and
    show the end of the server's log."""
    try:
        yield
    except BaseException:
        print("JupyterLab's log, last lines:\n" + "\n".join(
            lab[2].read_text(errors="replace").splitlines()[-40:]), file=sys.stderr)
        path = tmp_path / "failure.png"
        try:
            page.screenshot(path=str(path), full_page=True)
            print(f"screenshot of the failure: {path}", file=sys.stderr)
        except Exception as err:  # the page may be gone; the original failure matters more
            print(f"no screenshot ({err})", file=sys.stderr)
        raise


def _open(page, lab, path: str | None = None) -> None:
    base, token, _ = lab
    # `reset`: a fresh workspace, so no tab left open by an earlier test starts a kernel
    page.goto(f"{base}/lab/tree/{path}?reset&token={token}" if path else f"{base}/?token={token}")
    page.wait_for_selector(".jp-DirListing-item")


def _run_all(page, path: str) -> None:
    """Run all cells with the Run menu, as a learner would, and wait until every cell ran."""
    _wait_idle(page, 120)
    prompts = "() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]" \
              ".map(e => e.textContent.trim())"
    started = f"() => ({prompts})().some(t => t !== '[ ]:')"
    # On a busy machine the menu can be clicked before the notebook is the current document,
    # and then nothing happens; like a learner, click the tab and try again.
    for _attempt in range(3):
        page.locator("#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current").click()
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        try:
            page.wait_for_function(started, timeout=30_000)
            break
        except playwright_api.TimeoutError:
            page.keyboard.press("Escape")  # close the menu if it is still open
    try:
        page.wait_for_function(
            f"() => {{ const p = ({prompts})(); return p.length > 0 && "
            "p.every(t => /^\\[\\d+\\]:$/.test(t)); }", timeout=RUN_ALL_S * 1000)
    except playwright_api.TimeoutError:
        raise AssertionError(f"{path}: not every cell ran in {RUN_ALL_S} s; the prompts of its "
                             f"code cells: {page.evaluate(prompts)}") from None
    _wait_idle(page, 60)


def _wait_idle(page, seconds: float) -> None:
    """Wait until the open notebook's kernel is idle (its toolbar's execution indicator).

    When the kernel list is slow to arrive (a busy machine), JupyterLab asks which kernel to
    start; the answer it proposes is the notebook's own, Python 3, so accept it as a learner would.
    """
    idle = ("() => [...document.querySelectorAll("
            "'.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator')]"
            ".some(e => e.dataset.status === 'idle')")
    deadline = time.monotonic() + seconds
    while not page.evaluate(idle):
        dialog = page.locator(".jp-Dialog", has_text="Select Kernel")
        if dialog.count():
            dialog.locator(".jp-mod-accept").click()
        if time.monotonic() > deadline:
            raise TimeoutError(f"the notebook's kernel was not idle after {seconds} s")
        time.sleep(0.5)


def _problems(page) -> list[str]:
    """The text of every error or stderr output in the open notebook."""
    return page.eval_on_selector_all(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'],"
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']",
        "els => els.map(e => e.innerText.slice(0, 500))")


def _mtimes(*paths: str) -> dict[str, int]:
    return {p: (ROOT / p).stat().st_mtime_ns for p in paths}


def test_make_lab_serves_the_course_folder_and_opens_lesson_00(page, lab, tmp_path):
    with shot(page, tmp_path, lab):
        _open(page, lab)
        page.wait_for_selector(".jp-Notebook")
        assert "/lab/tree/notebooks/00_start_here.ipynb" in page.url
        page.locator(".jp-BreadCrumbs-home").click()
        page.wait_for_selector(".jp-DirListing-item[title*='exercises']")
        names = page.eval_on_selector_all(".jp-DirListing-itemText",
                                          "els => els.map(e => e.innerText.trim())")
        for folder in ("notebooks", "exercises", "solutions"):
            assert folder in names, f"the file browser shows {names}, not {folder}/"


def test_lesson_02_runs_clean_and_its_slider_redraws_the_plot(page, lab, tmp_path):
    before = _mtimes(LESSON)
    with shot(page, tmp_path, lab):
        _open(page, lab, LESSON)
        _run_all(page, LESSON)
        assert _problems(page) == [], "lesson 02 printed errors in the browser"

        # The explorer, the notebook's last widget: move its first slider (bits) one step.
        explorer = page.locator(".jp-CodeCell").filter(has=page.locator(".widget-interact")).last
        explorer.scroll_into_view_if_needed()
        image = explorer.locator(".jp-OutputArea-output img").last
        image.wait_for()
        src = image.get_attribute("src")
        readout = explorer.locator(".widget-readout").first
        value = readout.inner_text()
        explorer.locator(".widget-slider .noUi-handle").first.focus()
        page.keyboard.press("ArrowRight")
        page.wait_for_function(
            "([el, old]) => { const i = el.querySelector('.jp-OutputArea-output img');"
            " return i && i.getAttribute('src') !== old; }",
            arg=[explorer.element_handle(), src], timeout=60_000)
        assert readout.inner_text() != value, "the slider did not move"
        assert _problems(page) == [], "moving the slider printed errors"
    assert _mtimes(LESSON) == before, "the test must not save the lesson"


def test_exercise_02_runs_and_reports_unfinished_exercises(page, lab, tmp_path):
    before = _mtimes(EXERCISE)
    with shot(page, tmp_path, lab):
        _open(page, lab, EXERCISE)
        _run_all(page, EXERCISE)
        assert _problems(page) == [], "an unfinished exercise must not raise in the notebook"
        text = "\n".join(page.eval_on_selector_all(
            ".jp-OutputArea-output", "els => els.map(e => e.innerText)"))
        nb = json.loads((ROOT / EXERCISE).read_text())
        checks = sum("tl.checks.check_" in "".join(c["source"]) for c in nb["cells"])
        assert checks >= 1 and text.count("not implemented yet") == checks, text
    assert _mtimes(EXERCISE) == before, "the test must not save the exercise"
