"""App mode in a real browser: xdplab.app serves the tour with Voilà (code hidden) on 127.0.0.1 with
a token; Debian's chromium, driven by Playwright, changes the driver, the design and the variant
and checks that the diff, the plots and the failure reasons update.  Screenshots go to
``$XDP_SHOTS`` (default ``ci-shots/``) for a person to look at.  The browser test skips only when
/usr/bin/chromium (or voila) is missing; CI installs both."""
from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from xdplab import app

CHROMIUM = os.environ.get("XDP_CHROMIUM", "/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[1]
SHOTS = Path(os.environ.get("XDP_SHOTS", ROOT / "ci-shots"))
CHROME_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
               "--disable-background-networking", "--disable-component-update", "--disable-dev-shm-usage"]
TOKEN = "xdplab-voila-test"


def _has_voila() -> bool:
    import importlib.util
    return importlib.util.find_spec("voila") is not None


browser = [pytest.mark.browser,
           pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} missing: apt-get install chromium"),
           pytest.mark.skipif(not _has_voila(), reason="voila missing: pip install -e '.[app]'")]


# ----------------------------------------------------------------------------- no browser needed
def test_voila_command_binds_loopback_with_a_token_and_hides_code():
    nb = app.resolve_notebook(app.DEFAULT_NOTEBOOK)
    cmd = app.voila_command(nb, port=12345, token="abc")
    assert "--Voila.ip=127.0.0.1" in cmd and "--token=abc" in cmd and "--no-browser" in cmd
    assert "--VoilaConfiguration.strip_sources=True" in cmd and str(nb) in cmd
    env = app.voila_env({"MPLBACKEND": "Agg", "PATH": "/bin"})
    assert "MPLBACKEND" not in env and env["JUPYTER_CONFIG_PATH"].split(os.pathsep)[0] == str(ROOT / "jupyter_config")


def test_present_refuses_a_missing_notebook_by_name():
    with pytest.raises(FileNotFoundError, match="no-such.ipynb"):
        app.present("notebooks/no-such.ipynb", open_browser=False)


def test_project_jupyter_config_turns_off_announcements_and_update_checks():
    import json
    page = json.loads((ROOT / "jupyter_config" / "labconfig" / "page_config.json").read_text())
    assert page["disabledExtensions"]["@jupyterlab/apputils-extension:announcements"] is True
    lab = json.loads((ROOT / "jupyter_config" / "jupyter_lab_config.json").read_text())
    assert lab["LabApp"] == {"news_url": None, "check_for_updates_class": "jupyterlab.NeverCheckForUpdate"}
    make = (ROOT / "Makefile").read_text()
    assert 'JUPYTER_CONFIG_PATH="$(CURDIR)/jupyter_config' in make


# ----------------------------------------------------------------------------- the browser
@pytest.fixture(scope="module")
def voila_tour():
    os.environ.setdefault("HOME", tempfile.mkdtemp())
    proc, url = app.start(app.DEFAULT_NOTEBOOK, token=TOKEN, quiet=True)
    try:
        if not app.wait_until_up(url, timeout_s=90, proc=proc):
            pytest.fail(f"Voilà did not start (exit status {proc.poll()})")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _img_srcs(page) -> list[str]:
    return page.eval_on_selector_all(".widget-output img", "els => els.map(e => e.getAttribute('src'))")


@browser[0]
@browser[1]
@browser[2]
def test_voila_tour_reacts_to_driver_design_and_variant(voila_tour):
    from playwright.sync_api import sync_playwright
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(tempfile.mkdtemp(), executable_path=CHROMIUM, headless=True,
                                                   args=CHROME_ARGS, viewport={"width": 1500, "height": 1100})
        try:
            page = ctx.new_page()
            t0 = time.time()
            page.goto(voila_tour)
            diff = page.locator(".widget-html-content", has_text="unroll:ice").first
            diff.wait_for(timeout=180_000)
            page.locator(".widget-output img").nth(1).wait_for(timeout=60_000)
            render_s = time.time() - t0
            # code hidden: no code cell input, no editor; markdown stays
            assert page.locator(".jp-CodeCell .jp-InputArea, .cm-editor").count() == 0
            assert page.locator("text=Learning goals").count() >= 1
            assert page.locator(".xdplab-legend", has_text="unrolled by the driver").count() >= 1
            page.screenshot(path=str(SHOTS / "voila-tour-ice-page.png"), full_page=True)
            appbox = page.locator(".widget-vbox", has=page.locator(".widget-dropdown")).first
            appbox.screenshot(path=str(SHOTS / "voila-tour-ice.png"))
            before = _img_srcs(page)

            selects = page.locator(".widget-dropdown select")
            selects.nth(0).select_option("bnxt")                       # driver
            page.locator(".widget-html-content", has_text="unroll:bnxt").first.wait_for(timeout=60_000)
            assert page.locator(".widget-html-content", has_text="unroll:ice").count() == 0
            page.wait_for_function("(old) => { const s = [...document.querySelectorAll('.widget-output img')]"
                                   ".map(e => e.getAttribute('src')); return s.length >= 2 && s[0] !== old[0]; }",
                                   arg=before, timeout=60_000)
            after_driver = _img_srcs(page)
            assert after_driver[0] != before[0]
            appbox.screenshot(path=str(SHOTS / "voila-tour-bnxt.png"))

            selects.nth(1).select_option("merged")                     # design
            page.locator(".widget-html-content", has_text="what Linux 6.3 merged").first.wait_for(timeout=60_000)
            page.locator(".widget-html-content", has_text="design merged").first.wait_for(timeout=60_000)
            page.wait_for_function("(old) => { const s = [...document.querySelectorAll('.widget-output img')]"
                                   ".map(e => e.getAttribute('src')); return s.length >= 2 && s[1] !== old[1]; }",
                                   arg=after_driver, timeout=60_000)
            assert page.locator(".widget-html-content", has_text="call into kernel C").count() >= 1
            appbox.screenshot(path=str(SHOTS / "voila-tour-bnxt-merged.png"))

            selects.nth(1).select_option("rfc-v2")
            selects.nth(0).select_option("ice")
            page.locator(".widget-html-content", has_text="unroll:ice").first.wait_for(timeout=60_000)
            before_posted = _img_srcs(page)
            page.locator(".widget-toggle-buttons button", has_text="rfc-v2-posted").first.click()   # variant
            reasons = page.locator(".xdplab-reasons", has_text="jump to insn")
            reasons.first.wait_for(timeout=60_000)
            page.wait_for_function("(old) => { const s = [...document.querySelectorAll('.widget-output img')]"
                                   ".map(e => e.getAttribute('src')); return s.length >= 2 && s[1] !== old[1]; }",
                                   arg=before_posted, timeout=60_000)
            assert page.locator(".widget-html-content", has_text="S16_MAX placeholder").count() >= 1
            appbox.screenshot(path=str(SHOTS / "voila-tour-ice-posted.png"))
            print(f"\n[voila] first render {render_s:.1f} s")
        finally:
            ctx.close()
