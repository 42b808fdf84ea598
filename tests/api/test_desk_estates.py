"""The company view on the desk (各项目), in Chromium: a manager of every estate reads each estate of
the shared ops database side by side, in Chinese with no English word, on a desk screen and on a
phone, with a link to the other estate's desk and a switch to it in the header; a user of one
estate, limited to buildings, has neither."""

from __future__ import annotations

import asyncio
from pathlib import Path

from playwright.async_api import Browser, expect
from typer.testing import CliRunner

from facility.model import now_ns
from facility.netutil import free_port
from facility.records import NewAlarm
from facility.store.ops import OpsStore
from facility_app.cli import app
from tests.api.test_desk_browser import DESK, PHONE, _log_in, _shot
from tests.api.test_desk_zh import _foreign, _latin_names, _site, _visible_text
from testsupport.servers import Mosquitto
from testsupport.system import running_system

EAST_DESK = "https://east.example.net/"


def _add(site: Path, data: Path, name: str, *options: str) -> str:
    """`facility users add NAME OPTIONS` on the estate's ops store; the token it prints."""
    result = CliRunner().invoke(app, ["users", "add", name, *options, "--site", str(site), "--data", str(data)])
    assert result.exit_code == 0, result.output
    return result.stdout.strip().rsplit(": ", 1)[1]


async def _east_estate(data: Path) -> None:
    """Another estate on the same ops database, with an emergency not acknowledged."""
    east = OpsStore(f"sqlite+aiosqlite:///{data / 'ops.db'}", site="east", site_name="东区花园", desk_url=EAST_DESK)
    await east.start()
    try:
        await east.alarms.raise_alarm(
            NewAlarm("elevator-entrapment", "lift-e1", "emergency", "困人", "trapped", "", "", now_ns())
        )
    finally:
        await east.close()


async def test_a_manager_compares_the_estates_in_chinese(
    tmp_path: Path, mosquitto: Mosquitto, browser: Browser
) -> None:
    site_path, data = _site(tmp_path, mosquitto.url, free_port()), tmp_path / "data"
    manager = await asyncio.to_thread(_add, site_path, data, "mei", "--role", "manager", "--every-estate")
    duty = await asyncio.to_thread(_add, site_path, data, "ana", "--role", "duty")  # this estate, every building
    in_b1 = await asyncio.to_thread(_add, site_path, data, "bo", "--role", "duty", "--building", "B1")
    allowed = _latin_names(site_path) | {"mei", "English", "east"}  # ids stay as they are
    async with running_system(site_path, data) as (url, _):
        await _east_estate(data)

        page = await browser.new_page(viewport=DESK)
        await _log_in(page, url, manager)
        await page.click('#tabs button[data-tab="estates"]')
        rows = page.locator("#estates tbody tr")
        await expect(rows).to_have_count(2, timeout=10_000)
        east = rows.filter(has_text="东区花园")
        await expect(east.locator("td.alarming").first).to_have_text("1")
        await expect(east.locator("a")).to_have_attribute("href", EAST_DESK)
        await expect(east.locator("a")).to_have_text("进入该项目值班台")
        await expect(rows.filter(has_text="示范花园小区")).to_contain_text("当前值班台")
        switch = page.locator("#estate-switch")  # in the header, on every tab: this estate, then the other
        await expect(switch.locator("option")).to_have_text(["示范花园小区", "东区花园"])
        await expect(switch.locator("option").nth(1)).to_have_attribute("value", EAST_DESK)
        english = _foreign(await _visible_text(page), allowed)
        assert not english, f"English on the Chinese company view: {english}"
        await _shot(page, "zh-estates")
        await page.close()

        page = await browser.new_page(viewport=PHONE, is_mobile=True)
        await _log_in(page, url, manager)
        await page.click('#tabs button[data-tab="estates"]')
        await expect(page.locator("#estates tbody tr")).to_have_count(2, timeout=10_000)
        wide = await page.evaluate("() => document.documentElement.scrollWidth")
        assert wide <= PHONE["width"], f"the page is {wide} px wide on a {PHONE['width']} px phone"
        await _shot(page, "zh-estates-phone")
        await page.close()

        page = await browser.new_page(viewport=DESK)
        await _log_in(page, url, duty)
        await page.click('#tabs button[data-tab="estates"]')
        await expect(page.locator("#estates tbody tr")).to_have_count(1, timeout=10_000)  # their estate only
        await page.close()

        page = await browser.new_page(viewport=DESK)
        await _log_in(page, url, in_b1)
        await expect(page.locator('#tabs button[data-tab="estates"]')).to_be_hidden()
        await expect(page.locator("#estate-switch")).to_be_hidden()  # their one estate: nowhere to switch
        await page.close()
