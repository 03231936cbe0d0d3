"""A real browser: JupyterLab on 127.0.0.1 with a token, Debian's chromium driven by Playwright.

Runs the tour, changes the driver dropdown, sees the diff change, saves screenshots to
``$XDP_SHOTS`` (default ``ci-shots/``).  Skips when /usr/bin/chromium is missing (CI installs it).
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("XDP_CHROMIUM", "/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[1]
SHOTS = Path(os.environ.get("XDP_SHOTS", ROOT / "ci-shots"))
TOKEN = "xdplab-ui-test"
CHROME_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
               "--disable-background-networking", "--disable-component-update", "--disable-dev-shm-usage"]

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                 reason=f"{CHROMIUM} missing: apt-get install chromium (CI does)")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab():
    root = Path(tempfile.mkdtemp(prefix="xdplab-ui-"))
    shutil.copytree(ROOT / "notebooks", root / "notebooks")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    for var, sub in (("JUPYTER_CONFIG_DIR", "cfg"), ("JUPYTERLAB_SETTINGS_DIR", "settings"),
                     ("JUPYTERLAB_WORKSPACES_DIR", "ws"), ("JUPYTER_RUNTIME_DIR", "rt"), ("HOME", "home")):
        (root / sub).mkdir()
        env[var] = str(root / sub)
    # the project's own config (what `make lab` uses): announcements, news and update checks off
    env["JUPYTER_CONFIG_PATH"] = str(ROOT / "jupyter_config")
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    env["PYTHONPATH"] = str(ROOT)
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}",
           "--LabApp.expose_app_in_browser=True"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=2)
            break
        except OSError:
            time.sleep(0.3)
    else:
        proc.terminate()
        pytest.fail("JupyterLab did not start within 60 s")
    yield base
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_tour_driver_change_updates_the_diff(lab):
    from playwright.sync_api import sync_playwright
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(tempfile.mkdtemp(), executable_path=CHROMIUM, headless=True,
                                                   args=CHROME_ARGS, viewport={"width": 1500, "height": 1000})
        page = ctx.new_page()
        page.goto(f"{lab}/lab/tree/notebooks/00-tour.ipynb?reset&token={TOKEN}")
        page.wait_for_function("""() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
            const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
            return !!k && k.status === 'idle' && !!w.content.widgets.length; }""", timeout=120_000)
        panel = page.locator("#" + page.evaluate("window.jupyterapp.shell.currentWidget.id"))
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        diff = panel.locator(".widget-html-content", has_text="unroll:ice").first
        diff.wait_for(timeout=180_000)
        app = panel.locator(".widget-vbox").first
        app.scroll_into_view_if_needed()
        app.screenshot(path=str(SHOTS / "tour-ice.png"))
        panel.locator(".widget-dropdown select").first.select_option("bnxt")
        panel.locator(".widget-html-content", has_text="unroll:bnxt").first.wait_for(timeout=60_000)
        assert panel.locator(".widget-html-content", has_text="unroll:ice").count() == 0
        assert panel.locator(".widget-html-content", has_text="call bnxt_xdp_rx_timestamp").count() >= 1
        app.screenshot(path=str(SHOTS / "tour-bnxt.png"))
        # jupyter_config/ keeps JupyterLab quiet: no "get notified about official Jupyter news?" toast
        assert page.locator(".Toastify__toast", has_text="Jupyter news").count() == 0
        assert page.locator("text=official Jupyter news").count() == 0
        page.screenshot(path=str(SHOTS / "lab-tour-page.png"))
        ctx.close()


def test_binder_app_route_renders_the_tour_with_code_hidden(lab):
    """The README's second Binder link opens ``voila/render/notebooks/00-tour.ipynb`` on the Jupyter
    server: Voilà as a server extension.  The same route here, on the test's Lab server."""
    pytest.importorskip("voila")
    with urllib.request.urlopen(f"{lab}/voila/render/notebooks/00-tour.ipynb?token={TOKEN}", timeout=240) as r:
        page = r.read().decode()
    assert r.status == 200 and "Learning goals" in page
    assert "xdplab.viz.TourApp(" not in page          # code cells stripped
    assert "application/vnd.jupyter.widget-view+json" in page and "image/png" in page   # widgets, figures
