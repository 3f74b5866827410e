"""The dashboard in a real browser: Debian's Chromium driven by Playwright against `ftaudit dashboard` serving a
ledger. A viewer reads and cannot sign off; an engineer answers an open question and the documents change; a
reviewer approves with their password; `ftaudit release` then passes; the viewer takes the version's briefing and
the reviewer sees the read-receipt. Screenshots of each page are saved
(to $FTAUDIT_SCREENSHOTS when set, else the test's directory)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import PASSWORD, ftaudit

CHROMIUM = "/usr/bin/chromium"  # Debian's package (.ci/run installs it); Playwright's own download is unreachable


@pytest.fixture
def location(tmp_path) -> str:
    """One backend is enough in the browser: the flow tests run on SQLite and PostgreSQL."""
    return str(tmp_path / "ledger.sqlite")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(dash):
    port = _port()
    env = {**os.environ, "FTAUDIT_KEY": dash.key}
    proc = subprocess.Popen([sys.executable, "-m", "ftaudit.cli", "dashboard", "--ledger", dash.location,
                             "--listen", f"127.0.0.1:{port}"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url + "/healthz", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dashboard did not start: {proc.stderr.read()}") from None
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(20)


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def _login(browser, url: str, name: str):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(url + "/")
    assert page.url.startswith(url + "/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(url + "/")
    return page


def test_see_complete_approve_and_release_in_a_browser(dash, server, browser, tmp_path):
    shots = Path(os.environ.get("FTAUDIT_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)

    viewer = _login(browser, server, "vic")
    assert viewer.locator("table.overview tbody tr").count() == 1
    assert viewer.locator("table.overview").inner_text().count("not released") == 1
    viewer.screenshot(path=str(shots / "overview.png"), full_page=True)
    viewer.click("table.overview a")
    viewer.wait_for_selector("#decision")
    assert "Role:" in viewer.inner_text("#decision")
    assert viewer.locator("form.decision").count() == 0  # a viewer is not offered the sign-off
    csrf = viewer.locator("input[name=csrf]").first.get_attribute("value")
    status = viewer.evaluate("""async ([url, csrf]) => (await fetch(url, {method: 'POST', body: new URLSearchParams(
        {csrf, decision: 'approve', reason: 'not mine to give', password: 'x'})})).status""",
                             [f"/runs/{dash.run_id}/decision", csrf])
    assert status == 403
    viewer.screenshot(path=str(shots / "run.png"), full_page=True)

    engineer = _login(browser, server, "erik")
    engineer.goto(f"{server}/runs/{dash.run_id}")
    awaiting = int(engineer.locator("#documents tbody tr").nth(1).locator("td").nth(2).inner_text())
    engineer.click("text=Answer the open questions")
    engineer.fill("#q-licence", "Apache-2.0 (fine-tuned weights)")
    engineer.screenshot(path=str(shots / "complete.png"), full_page=True)
    engineer.click("form.questions button[type=submit]")
    assert "1 answer(s) recorded" in engineer.inner_text("main")
    engineer.goto(f"{server}/runs/{dash.run_id}")
    assert int(engineer.locator("#documents tbody tr").nth(1).locator("td").nth(2).inner_text()) == awaiting - 1
    report = engineer.frame_locator("iframe.report")
    assert "Apache-2.0 (fine-tuned weights)" in report.locator("body").inner_text()

    reviewer = _login(browser, server, "rita")
    reviewer.goto(f"{server}/runs/{dash.run_id}#sign-off")
    reviewer.check("input[value=approve]")
    reviewer.fill("textarea[name=reason]", "Documents complete for release; evaluation within its gates.")
    reviewer.fill("input[name=password]", PASSWORD)
    reviewer.click("form.decision button[type=submit]")
    reviewer.wait_for_selector("text=Release allowed")
    reviewer.screenshot(path=str(shots / "sign-off.png"), full_page=True)

    done = ftaudit("release", str(dash.run_dir), "--ledger", dash.location, "--key", dash.key)
    assert done.returncode == 0, done.stderr
    reviewer.goto(server + "/")
    assert "approved" in reviewer.inner_text("table.overview")

    # The approved version's briefing: the viewer reads it, answers the quiz, confirms; the reviewer sees the record.
    viewer.goto(f"{server}/runs/{dash.run_id}/briefing")
    assert "What it is for" in viewer.inner_text("main")
    for n in range(viewer.locator("form.quiz fieldset").count()):
        viewer.locator(f"input[name=q{n}]").first.check()
    viewer.check("input[name=read]")
    viewer.screenshot(path=str(shots / "briefing.png"), full_page=True)
    viewer.click("form.quiz button[type=submit]")
    assert "Recorded: you scored" in viewer.inner_text("main")
    reviewer.goto(server + "/briefings")
    assert "vic" in reviewer.inner_text("table")
    reviewer.screenshot(path=str(shots / "briefings.png"), full_page=True)
    reviewer.goto(server + "/monitoring")
    assert "No deployment is monitored yet" in reviewer.inner_text("main")
    reviewer.screenshot(path=str(shots / "monitoring.png"), full_page=True)
    for name in ("overview", "run", "complete", "sign-off", "briefing", "briefings", "monitoring"):
        assert (shots / f"{name}.png").stat().st_size > 10_000
