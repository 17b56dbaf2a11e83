"""The dashboard in a real browser (Debian's headless Chromium driven by Playwright) against a
running `superfed demo`: a simulated outage turns the site's tile down, a submitted job shows
and reaches COMPLETED, an admin's drain shows; no CSP violation or script error on the way.

Screenshots go to tests/artifacts/dashboard/ (gitignored), kept after the run.
Needs /usr/bin/chromium (`apt-get install chromium`; .ci/run installs it) and the `playwright`
package (the test extra); never a browser Playwright downloads. Without them the test fails
under CI (CI=true) and is skipped locally with one line saying what is missing."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Broker

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "dashboard"
WAIT_MS = 90_000  # generous: a health check every 2 s, keep-alives every 15 s at most


def _missing() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing (pip install -e '.[test]')"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    why = _missing()
    if why:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"dashboard browser test: {why}")
        pytest.skip(f"dashboard browser test: {why}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # --no-sandbox: CI containers run as root, where Chromium's sandbox cannot start
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


class PageWatch:
    """Script errors and CSP refusals seen by a page: the test ends with none."""

    def __init__(self, page: Any):
        self.problems: list[str] = []
        page.on("pageerror", lambda exc: self.problems.append(f"script error: {exc}"))
        page.on("console", self._console)

    def _console(self, msg: Any) -> None:
        if msg.type == "error" and "Content Security Policy" in msg.text:
            self.problems.append(f"CSP: {msg.text}")


def _open(browser: Any, b: Broker, role: str, viewport: dict[str, int]) -> tuple[Any, Any, PageWatch]:
    ctx = browser.new_context(viewport=viewport)
    page = ctx.new_page()
    watch = PageWatch(page)
    page.goto(b.info["dashboard"])
    page.fill("#token", b.info["tokens"][role])
    page.click("#login button[type=submit]")
    page.wait_for_selector("#sites [data-site=nersc]", timeout=WAIT_MS)
    page.wait_for_selector("#live.on", timeout=WAIT_MS)  # the event stream is open
    return ctx, page, watch


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_dashboard_live_outage_job_and_drain(browser: Any, broker: Broker) -> None:
    from playwright.sync_api import expect

    b = broker
    ctx, page, watch = _open(browser, b, "viewer", {"width": 1366, "height": 768})
    try:
        for site in ("nersc", "cscs", "alcf"):
            expect(page.locator(f"#sites [data-site={site}]")).to_have_attribute("data-state", "up", timeout=WAIT_MS)
        assert page.locator("[data-action]").count() == 0  # a viewer gets no admin buttons
        # the token is kept for the tab: a reload stays signed in
        page.reload()
        page.wait_for_selector("#live.on", timeout=WAIT_MS)

        # a job appears and reaches COMPLETED (the list refreshes on the stream's messages)
        job = {"project": "m0001",
               "spec": {"name": "dash-hello", "executable": "/bin/bash", "arguments": ["-c", "echo hi; sleep 2"],
                        "resources": {"node_count": 1}, "attributes": {"duration": 600}}}
        with b.client("submitter") as c:
            r = c.post("/api/v1/jobs", json=job)
            assert r.status_code == 202, r.text
            job_id = r.json()["id"]
        row = page.locator(f"#jobs tr[data-job='{job_id}']")
        expect(row).to_be_visible(timeout=WAIT_MS)
        expect(row).to_have_attribute("data-state", "COMPLETED", timeout=WAIT_MS)
        row.locator("a").click()
        expect(page.locator("[data-role=job-state]")).to_have_text("COMPLETED", timeout=WAIT_MS)
        # its history, state by state (ACTIVE may pass between two polls at this time scale)
        history = page.locator("#job-detail [data-role=history] tbody tr td:first-child")
        expect(history.first).to_have_text("NEW")
        expect(history.last).to_have_text("COMPLETED")
        _shot(page, "job")
        page.click("#back")

        # an outage at the simulated NERSC: its tile turns down, through the event stream
        httpx.post(f"{b.sim('sfapi')}/_sim/outage", json={"component": "compute", "state": "down"}, timeout=10)
        try:
            nersc = page.locator("#sites [data-site=nersc]")
            expect(nersc).to_have_attribute("data-state", "down", timeout=WAIT_MS)
            expect(nersc.locator("[data-role=placement]")).to_have_text("placement now: not chosen", timeout=WAIT_MS)
            expect(page.locator("#events")).to_contain_text("nersc")
            _shot(page, "outage-laptop")
            page.set_viewport_size({"width": 2560, "height": 1440})  # a wall screen
            _shot(page, "outage-wall")
            page.set_viewport_size({"width": 390, "height": 844})  # a phone: one column
            _shot(page, "outage-phone")
        finally:
            httpx.post(f"{b.sim('sfapi')}/_sim/outage", json={"component": "compute", "state": "up"}, timeout=10)
        expect(page.locator("#sites [data-site=nersc]")).to_have_attribute("data-state", "up", timeout=WAIT_MS)
        assert watch.problems == []
    finally:
        ctx.close()

    # an admin: drain shows, enable clears it, a config edit goes through with If-Match
    ctx, page, watch = _open(browser, b, "admin", {"width": 1366, "height": 768})
    try:
        cscs = page.locator("#sites [data-site=cscs]")
        cscs.locator("[data-action=drain]").click()
        expect(cscs.locator("[data-flag=draining]")).to_be_visible(timeout=WAIT_MS)
        expect(cscs.locator(".why")).to_contain_text("draining", timeout=WAIT_MS)
        _shot(page, "drain")
        with b.client("viewer") as c:
            assert c.get("/api/v1/sites/cscs").json()["draining"] is True
        cscs.locator("[data-action=enable]").click()
        expect(cscs.locator("[data-flag=draining]")).to_have_count(0, timeout=WAIT_MS)

        editor = page.locator("#editor-text")
        # someone else changes the site while the editor is open: the save is refused (412)
        cscs.locator("[data-action=edit]").click()
        expect(editor).to_be_visible(timeout=WAIT_MS)
        with b.client("admin") as c:
            assert c.post("/api/v1/sites/cscs/drain").status_code == 200  # a new revision
        config = json.loads(editor.input_value())
        config["weight"] = 2.5
        editor.fill(json.dumps(config, indent=2))
        page.click("#editor-save")
        expect(page.locator("#editor-error")).to_contain_text("412", timeout=WAIT_MS)
        page.click("#editor-cancel")
        with b.client("viewer") as c:
            assert c.get("/api/v1/sites/cscs").json()["weight"] == 1.0
        # read again, then saved with the current revision
        cscs.locator("[data-action=edit]").click()
        expect(editor).to_be_visible(timeout=WAIT_MS)
        config = json.loads(editor.input_value())
        config["weight"] = 3.5
        editor.fill(json.dumps(config, indent=2))
        page.click("#editor-save")
        expect(page.locator("#editor")).to_be_hidden(timeout=WAIT_MS)
        with b.client("viewer") as c:
            assert c.get("/api/v1/sites/cscs").json()["weight"] == 3.5
        assert watch.problems == []
    finally:
        ctx.close()
