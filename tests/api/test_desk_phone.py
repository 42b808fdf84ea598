"""The duty desk where a duty officer found it wanting (issue 14): on a phone (390×844) and at
1366×768, in Debian's Chromium driven by Playwright, against the whole system with simulated plant.

The emergency banner folds to its count on a phone, the trend's text keeps its size and the trend
zooms, the drawer leaves the list's buttons usable, locations say which part is a building and which
a floor, a shelve reason is shown without hovering, and the login page names a bad token as such.
"""

from __future__ import annotations

import re
from pathlib import Path

from playwright.async_api import Browser, Page, expect

from facility.netutil import free_port
from tests.api.test_desk_browser import DESK, PHONE, _log_in, _shot, _sim, _state
from testsupport.servers import Mosquitto
from testsupport.system import TOKEN, running_system, write_site

EMERGENCY_RED = "rgb(193, 18, 31)"  # --emergency in desk.css


async def _height(page: Page, selector: str) -> float:
    box = await page.locator(selector).bounding_box()
    assert box is not None, f"{selector} is not shown"
    return box["height"]


async def _x_labels(page: Page) -> list[str]:
    return await page.locator("#trend svg.trend text.x-tick").all_text_contents()


async def test_on_a_phone_the_banner_folds_the_trend_is_readable_and_zooms_and_floors_are_named(
    tmp_path: Path, mosquitto: Mosquitto, browser: Browser
) -> None:
    site_path = write_site(tmp_path, mosquitto.url, free_port())
    async with running_system(site_path, tmp_path / "data") as (url, _site):
        await _sim(url, "POST", "/faults", {"device": "lift-1", "fault": "entrapment"})
        phone = await browser.new_page(viewport=PHONE, is_mobile=True, has_touch=True)
        await _log_in(phone, url, TOKEN)

        # Folded to its count, still red and pulsing, on every tab; a tap lists the alarms.
        banner = phone.locator("#emergency-banner")
        toggle = banner.locator("#emergency-toggle")
        await expect(toggle).to_have_text(re.compile(r"^1 条紧急报警 ▸$"), timeout=30_000)
        # The pulse alternates the border with pink every second: a poll that keeps pace with it
        # can see pink every time, so the colour is read with the pulse held at its start.
        await expect(banner).to_have_css("animation-name", "pulse")
        held = await banner.evaluate(
            "b => { for (const a of b.getAnimations()) { a.pause(); a.currentTime = 0; }"
            " return getComputedStyle(b).borderTopColor; }"
        )
        assert held == EMERGENCY_RED
        await banner.evaluate("b => { for (const a of b.getAnimations()) a.play(); }")
        await expect(banner.locator("li")).to_have_count(0)
        await expect(banner).not_to_contain_text("null")
        folded = await _height(phone, "#emergency-banner")
        assert folded < 120, f"the folded banner takes {folded} of 844 px"
        await _shot(phone, "phone-1-banner-folded")
        await toggle.tap()
        await expect(banner.locator("li").first).to_contain_text("Lift 1")
        await expect(banner.locator("button.ack")).to_be_visible()
        await expect(toggle).to_have_attribute("aria-expanded", "true")
        assert await _height(phone, "#emergency-banner") > folded
        await toggle.tap()
        await expect(banner.locator("li")).to_have_count(0)

        # The alarm's building and the device board's building and floor are named as such.
        await expect(phone.locator("#alarms tr.alarm td.where")).to_contain_text("楼栋 B1")
        await phone.locator('#tabs button[data-tab="devices"]').tap()
        await expect(banner).to_be_visible()  # the count stays on every tab
        pump = phone.locator('#devices [data-building="B2"] [data-device="pump-1"]')
        await expect(phone.locator('#devices [data-building="B2"] > h3')).to_have_text("楼栋 B2")
        await expect(pump.locator(":scope > .quiet")).to_contain_text("楼层 B1 · pump room")

        # The trend's axis text as rendered (font size times the drawing's scale), then zoom and reset.
        pressure = pump.locator('dd[data-point="outlet_pressure"]')
        await expect(pressure).to_have_class("q-good", timeout=10_000)
        await pressure.locator("button.value").tap()
        await phone.locator('#trend button[data-range="1h"]').tap()
        chart = phone.locator("#trend svg.trend")
        await expect(chart.locator("polyline.mean, circle.mean-dot").first).to_be_attached(timeout=10_000)
        rendered = await phone.evaluate(
            """() => {
                const svg = document.querySelector("#trend svg.trend");
                const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
                const ticks = [...svg.querySelectorAll("text.tick")];
                return Math.min(...ticks.map((t) => parseFloat(getComputedStyle(t).fontSize) * scale));
            }"""
        )
        assert rendered >= 11, f"the trend's axis text is {rendered:.1f} px on a phone"
        await _shot(phone, "phone-2-trend")
        whole = await _x_labels(phone)
        await phone.locator("#trend button.zoom-in").tap()
        await expect(chart.locator("polyline.mean, circle.mean-dot").first).to_be_attached(timeout=10_000)
        await expect(phone.locator("#trend svg.trend text.x-tick").first).not_to_have_text(whole[0])
        assert (await _x_labels(phone))[-1] == whole[-1]  # zoomed towards the latest time
        await phone.locator("#trend button.zoom-reset").tap()
        await expect(phone.locator("#trend svg.trend text.x-tick").first).to_have_text(whole[0], timeout=10_000)
        assert await _x_labels(phone) == whole


async def test_at_1366_the_drawer_leaves_the_list_usable_and_a_shelve_reason_is_shown(
    tmp_path: Path, mosquitto: Mosquitto, browser: Browser
) -> None:
    site_path = write_site(tmp_path, mosquitto.url, free_port())
    async with running_system(site_path, tmp_path / "data") as (url, _site):
        await _sim(url, "POST", "/faults", {"device": "lift-1", "fault": "entrapment"})
        page = await browser.new_page(viewport=DESK)
        await _log_in(page, url, TOKEN)
        row = page.locator("#alarms tbody tr.alarm.priority-emergency")
        await expect(row).to_have_class(_state("unacknowledged"), timeout=30_000)
        await row.locator("td.what").click()
        await expect(page.locator("#detail .facts")).to_contain_text("楼栋 B1", timeout=10_000)

        # With the drawer open, the point at the middle of the row's buttons is the button itself.
        # Judged in the page until it holds: the live list re-renders, replacing its buttons.
        for button in ("button.ack", "button.shelve"):
            await page.wait_for_function(
                """(sel) => {
                    const b = document.querySelector(sel);
                    if (!b) return false;
                    const r = b.getBoundingClientRect();
                    const at = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
                    return r.width > 0 && at !== null && b.contains(at);
                }""",
                arg=f"#alarms tbody tr.alarm.priority-emergency {button}",
                timeout=10_000,
            )
        await _shot(page, "desk-1366-drawer")
        await row.locator("button.ack").click()
        await expect(row).to_have_class(_state("acknowledged"), timeout=10_000)

        # Shelve with a reason: the reason is on the row under 已搁置 and in the detail, no hover needed.
        reason = "vendor on site, car isolated"
        await row.locator("button.shelve").click()
        await page.locator("#alarms .shelve-form input[name=reason]").fill(reason)
        await page.locator("#alarms .shelve-form button[type=submit]").click()
        await expect(page.locator("#no-alarms")).to_be_visible(timeout=10_000)
        await page.click('#alarm-views button[data-view="shelved"]')
        await expect(row.locator(".shelve-reason")).to_be_visible()
        await expect(row.locator(".shelve-reason")).to_have_text(f"搁置原因：{reason}")
        await expect(page.locator("#detail .facts .shelve-reason")).to_contain_text(reason, timeout=10_000)
        await _shot(page, "desk-1366-shelved")


async def test_the_login_page_says_the_token_is_wrong_not_that_the_server_is_down(
    tmp_path: Path, mosquitto: Mosquitto, browser: Browser
) -> None:
    site_path = write_site(tmp_path, mosquitto.url, free_port())
    async with running_system(site_path, tmp_path / "data") as (url, _site):
        page = await browser.new_page(viewport=PHONE)
        await page.goto(url + "/")
        error = page.locator("#login-error")
        # A token pasted with a full-width character: the browser cannot send it, the server is up.
        await page.fill("#token", "test-token-０１２３")
        await page.click("#login-form button[type=submit]")
        await expect(error).to_contain_text("令牌中含有不可用的字符", timeout=10_000)
        await expect(error).not_to_contain_text("无法连接服务器")
        await page.fill("#token", "not-the-token")
        await page.click("#login-form button[type=submit]")
        await expect(error).to_have_text("令牌无效或已被吊销", timeout=10_000)
        await expect(page.locator("#desk")).to_be_hidden()
