"""The ipywidgets explorer in a real browser: JupyterLab + headless Chromium (Playwright).

    make browser-test            # installs Debian's chromium and the `browser` extra if missing
    .venv/bin/python scripts/browser_test.py [--notebook notebooks/explore.ipynb] [--timeout 900]

Starts JupyterLab on 127.0.0.1 (a free port, a random token, no browser), opens the notebook in
the system Chromium (Playwright drives it; no browser download), runs all cells, and checks that
- every cell ran without an error output,
- the widgets rendered (sliders present, no "Loading widget" placeholder left),
- moving a slider changes the figure the explorer draws (its image differs).
Screenshots go to results/browser/ (before and after the slider moved). Exit status 0 on success;
otherwise a message saying which check failed.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "results" / "browser"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("no chromium on PATH: `sudo apt-get install -y chromium` (make browser-test does it)")


def start_lab(port: int, token: str, log: Path) -> subprocess.Popen:
    """JupyterLab on 127.0.0.1 only, serving the repository, its app object exposed to the page
    (to run all cells with the same command the menu uses)."""
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip",
        "127.0.0.1",
        f"--port={port}",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={ROOT}",
        "--LabApp.expose_app_in_browser=True",
        "--ServerApp.open_browser=False",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]  # nothing fetched
    if os.geteuid() == 0:  # CI containers run as root; JupyterLab refuses that unless told
        cmd.append("--ServerApp.allow_root=True")
    env = {**os.environ, "JUPYTER_PLATFORM_DIRS": "1"}
    return subprocess.Popen(
        cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True
    )


def wait_for_lab(port: int, token: str, proc: subprocess.Popen, timeout: float) -> None:
    # Polls our own JupyterLab on 127.0.0.1 (started above): nothing leaves the machine.
    url = f"http://127.0.0.1:{port}/api/status?token={token}"
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            sys.exit(f"JupyterLab exited with status {proc.returncode} (log: {OUT / 'jupyterlab.log'})")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(1)
    sys.exit(f"JupyterLab did not answer on 127.0.0.1:{port} within {timeout:.0f} s")


# The explorer's figure: an ipywidgets Image (cgm.viz.MotionExplorer.image).
FIGURE = "img.widget-image"


def figure_src(page) -> str:
    """The src (a blob URL, new at every redraw) of the explorer's figure."""
    images = page.locator(FIGURE)
    n = images.count()
    return images.nth(n - 1).get_attribute("src") if n else ""


def run(notebook: str, timeout: float) -> None:
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    # JupyterLab autosaves what it runs: work on a copy beside the original (same folder, so
    # relative paths hold), never on the committed notebook.
    source = ROOT / notebook
    if not source.is_file():
        sys.exit(f"no notebook {source}")
    copy = source.with_name(f"_browser_test_{source.name}")
    shutil.copyfile(source, copy)
    notebook = str(copy.relative_to(ROOT))
    port, token = free_port(), secrets.token_hex(16)
    lab = start_lab(port, token, OUT / "jupyterlab.log")
    try:
        wait_for_lab(port, token, lab, max(120.0, timeout / 3))  # a loaded machine starts it slowly
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=chromium(),
                headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
            )
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(timeout * 1000)
            page.goto(f"http://127.0.0.1:{port}/lab/tree/{notebook}?token={token}&reset")
            page.wait_for_function(
                "() => window.jupyterapp && window.jupyterapp.shell.currentWidget "
                "&& window.jupyterapp.shell.currentWidget.sessionContext "
                "&& window.jupyterapp.shell.currentWidget.sessionContext.session "
                "&& window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
            )
            page.wait_for_function(
                "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle'"
            )
            print("kernel ready; running all cells", flush=True)
            start = time.time()
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            # Done when no cell is queued or running ("[*]") and the kernel is idle.
            page.wait_for_function(
                "() => { const ps = [...document.querySelectorAll('.jp-InputPrompt')].map(e => e.textContent);"
                " return ps.length > 0 && ps.every(t => !t.includes('*')) && ps.some(t => /\\[\\d+\\]/.test(t))"
                " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle'; }",
                polling=1000,
            )
            print(f"all cells ran in {time.time() - start:.0f} s", flush=True)
            errors = page.locator(
                ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
                ":has-text('Traceback'), .jp-RenderedText[data-mime-type="
                "'application/vnd.jupyter.error']"
            )
            if errors.count():
                page.screenshot(path=str(OUT / "explore_error.png"), full_page=True)
                sys.exit(f"a cell raised an error: {errors.first.inner_text()[:2000]}")
            sliders = page.locator(".widget-slider, .jupyter-widget-slider, .widget-hslider")
            sliders.first.wait_for(state="visible")
            page.wait_for_timeout(2000)
            if "Loading widget" in page.inner_text("body"):
                page.screenshot(path=str(OUT / "explore_loading.png"), full_page=True)
                sys.exit("a widget did not render: the page still says 'Loading widget'")
            page.wait_for_function(f"() => document.querySelectorAll('{FIGURE}').length > 0")
            before = figure_src(page)
            sliders.first.scroll_into_view_if_needed()
            page.screenshot(path=str(OUT / "explore_before.png"), full_page=False)
            # Move a slider with the keyboard, as a user would: focus its handle, press Right.
            handle = page.locator(".widget-slider .noUi-handle, .jupyter-widget-slider .noUi-handle")
            moved = None
            for i in range(handle.count()):
                h = handle.nth(i)
                if not h.is_visible():
                    continue
                h.click()
                for _ in range(3):
                    h.press("ArrowRight")
                page.wait_for_timeout(1000)
                try:
                    page.wait_for_function(
                        "(b) => { const im = [...document.querySelectorAll("
                        f"'{FIGURE}')]; "
                        "return im.length && im[im.length - 1].src !== b; }",
                        arg=before,
                        timeout=60_000,
                    )
                    moved = i
                    break
                except Exception:  # this slider's range may be a single value: try the next one
                    continue
            page.screenshot(path=str(OUT / "explore_after.png"), full_page=False)
            if moved is None:
                sys.exit("moving the sliders did not change the explorer's figure")
            print(
                f"slider {moved} moved: the figure changed; widgets rendered; screenshots in "
                f"{OUT.relative_to(ROOT)}/",
                flush=True,
            )
            browser.close()
    finally:
        os.killpg(lab.pid, signal.SIGTERM)  # JupyterLab and the kernels it started, only ours
        try:
            lab.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(lab.pid, signal.SIGKILL)
        copy.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--notebook", default="notebooks/explore.ipynb", help="path relative to the repository"
    )
    parser.add_argument(
        "--timeout", type=float, default=900, help="seconds for any one wait (cells included)"
    )
    args = parser.parse_args(argv)
    run(args.notebook, args.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
