"""The duty desk in a real browser (Debian's Chromium driven by Playwright).

Screenshots are kept in test-artifacts/ for a person to look at.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from facility.netutil import free_port
from tests.servers import Mosquitto, require_binary
from tests.system import TOKEN, running_system, write_site

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    chromium = require_binary("chromium", "chromium")
    async with async_playwright() as pw:
        instance = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        yield instance
        await instance.close()


async def _log_in(page: Page, url: str, token: str) -> None:
    await page.goto(url + "/")
    await page.fill("#token", token)
    await page.click("#login-form button[type=submit]")


async def test_duty_officer_sees_a_fault_arrive_and_acknowledges_it(
    tmp_path: Path, mosquitto: Mosquitto, browser: Browser
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    site_path = write_site(tmp_path, mosquitto.url, free_port())
    async with running_system(site_path, tmp_path / "data") as (url, _site):
        page = await browser.new_page(viewport={"width": 1366, "height": 768}, timezone_id="Europe/London")
        await _log_in(page, url, TOKEN)
        await expect(page.locator("#link")).to_have_class("link live", timeout=10_000)
        await expect(page.locator("#no-alarms")).to_be_visible()
        await expect(page.locator('[data-device="pump-1"] dd').first).not_to_have_text("—", timeout=10_000)

        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=url, headers=headers) as http:
            await http.post("/sim/faults", json={"device": "lift-1", "fault": "entrapment"})

        row = page.locator("#alarms tbody tr.priority-emergency")
        await expect(row).to_have_class("priority-emergency state-unacknowledged", timeout=30_000)  # no reload
        await expect(row).to_contain_text("Lift 1")
        await expect(page.locator("#site")).to_have_text("Test estate")
        async with httpx.AsyncClient(base_url=url, headers=headers) as http:
            (raised,) = (await http.get("/api/v1/alarms")).json()
        # The browser runs in London; the desk shows the site's own time (Asia/Shanghai).
        shown = datetime.fromtimestamp(raised["raised_at"] / 1e9, ZoneInfo("Asia/Shanghai"))
        await expect(row).to_contain_text(f"{shown:%Y/%m/%d %H:%M:%S}")
        await page.screenshot(path=ARTIFACTS / "desk-alarm.png")

        await row.locator("button.ack").click()
        await expect(row).to_have_class("priority-emergency state-acknowledged", timeout=10_000)
        await expect(row.locator("button.ack")).to_have_count(0)

        await page.click("#lang")
        await expect(page.locator("h1")).to_have_text("Duty desk")
        await expect(row.locator(".state")).to_have_text("Acknowledged")
        await page.screenshot(path=ARTIFACTS / "desk-acknowledged-en.png")

        await page.reload()  # the token is kept for the browser session, the language for good
        await expect(page.locator("h1")).to_have_text("Duty desk")
        await expect(row.locator(".state")).to_have_text("Acknowledged", timeout=10_000)


async def test_a_wrong_token_is_refused_on_the_login_page(
    tmp_path: Path, mosquitto: Mosquitto, browser: Browser
) -> None:
    site_path = write_site(tmp_path, mosquitto.url, free_port())
    async with running_system(site_path, tmp_path / "data") as (url, _site):
        page = await browser.new_page()
        await _log_in(page, url, "not-the-token")
        await expect(page.locator("#login-error")).not_to_be_empty(timeout=10_000)
        await expect(page.locator("#login")).to_be_visible()
        await expect(page.locator("#desk")).to_be_hidden()
