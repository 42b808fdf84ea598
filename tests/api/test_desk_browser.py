"""The duty desk in a real browser (Debian's Chromium driven by Playwright), against the whole system
with simulated plant: faults are injected through /sim and the page must show them without a reload.

Screenshots of each step are kept in test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx
import openpyxl
from playwright.async_api import Browser, Page, Request, ViewportSize, expect
from typer.testing import CliRunner

from facility.netutil import free_port
from facility_app.cli import app
from testsupport.servers import Mosquitto
from testsupport.system import TOKEN, running_system, write_site

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SITE_ZONE = ZoneInfo("Asia/Shanghai")  # write_site's estate; the browsers run in London
DESK = ViewportSize(width=1366, height=768)
PHONE = ViewportSize(width=390, height=844)
ADMIN = {"Authorization": f"Bearer {TOKEN}"}  # the fixed token: an admin, who may drive the simulators


def _add_user(site: Path, data: Path, name: str, role: str) -> str:
    """A user of the ops store, made with `facility users add`; returns the token."""
    result = CliRunner().invoke(app, ["users", "add", name, "--role", role, "--site", str(site), "--data", str(data)])
    assert result.exit_code == 0, result.output
    return result.stdout.strip().partition(": ")[2]


async def _user(site: Path, data: Path, name: str, role: str) -> str:
    return await asyncio.to_thread(_add_user, site, data, name, role)  # the command runs its own event loop


@contextlib.asynccontextmanager
async def _on_desk_screen(
    tmp_path: Path, mosquitto: Mosquitto, browser: Browser
) -> AsyncIterator[tuple[str, Page, list[str]]]:
    """The test estate running, a page on a desk-sized screen, and what its policy refuses."""
    site_path = write_site(tmp_path, mosquitto.url, free_port())
    async with running_system(site_path, tmp_path / "data") as (url, _site):
        page = await browser.new_page(viewport=DESK)
        yield url, page, _refusals(page)


def _refusals(page: Page) -> list[str]:
    """What the page's Content-Security-Policy refuses from now on (Chromium says so on the console,
    for the page and its frames): the desk must run whole under its policy."""
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    return refused


async def _log_in(page: Page, url: str, token: str) -> None:
    await page.goto(url + "/")
    await page.fill("#token", token)
    await page.click("#login-form button[type=submit]")
    await expect(page.locator("#link")).to_have_class("link live", timeout=10_000)


async def _shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS / f"desk-{name}.png")


async def _sim(url: str, method: str, path: str, body: dict[str, object] | None = None) -> None:
    async with httpx.AsyncClient(base_url=url, headers=ADMIN) as http:
        response = await http.request(method, f"/sim{path}", json=body)
        response.raise_for_status()


def _state(name: str) -> re.Pattern[str]:
    return re.compile(rf"\bstate-{name}\b")


async def test_an_emergency_sounds_flashes_and_is_worked_through_its_plan(
    tmp_path: Path, mosquitto: Mosquitto, browser: Browser
) -> None:
    site_path, data = write_site(tmp_path, mosquitto.url, free_port()), tmp_path / "data"
    token = await _user(site_path, data, "ana", "duty")
    async with running_system(site_path, data) as (url, _site):
        page = await browser.new_page(viewport=DESK, timezone_id="Europe/London")
        await _log_in(page, url, token)  # the login click is the gesture that lets the page make sound
        await expect(page.locator("#who")).to_have_text("ana · 值班员")
        await expect(page.locator("#site")).to_have_text("Test estate")
        await expect(page.locator("#no-alarms")).to_be_visible()
        await expect(page.locator("#emergency-banner")).to_be_hidden()
        await expect(page.locator("body")).to_have_attribute("data-sound", "idle")

        await _sim(url, "POST", "/faults", {"device": "lift-1", "fault": "entrapment"})
        row = page.locator("#alarms tbody tr.alarm.priority-emergency")
        await expect(row).to_have_class(_state("unacknowledged"), timeout=30_000)  # no reload
        await expect(row).to_contain_text("Lift 1")
        await expect(row.locator(".marker")).to_be_visible()
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}) as http:
            (raised,) = (await http.get("/api/v1/alarms")).json()["items"]
        shown = datetime.fromtimestamp(raised["raised_at"] / 1e9, SITE_ZONE)
        await expect(row.locator("td.when")).to_have_text(f"{shown:%m-%d %H:%M:%S}")  # site time, not London's

        # Not to be missed: a banner, a beeping sound, a flashing title.
        banner = page.locator("#emergency-banner")
        await expect(banner).to_be_visible()
        await expect(banner).to_contain_text("Lift 1")
        await expect(page.locator("body")).to_have_attribute("data-sound", "sounding")
        await expect(page).to_have_title(re.compile("⚠"), timeout=5_000)
        await _shot(page, "1-emergency")
        await page.click("#silence")
        await expect(page.locator("body")).to_have_attribute("data-sound", "silenced")
        await expect(banner).to_be_visible()  # silenced, still unacknowledged: the banner stays

        # The plan the alarm opened: tick a step with a note.
        await row.click()
        plan = page.locator("#detail .plan")
        await expect(plan).to_be_visible(timeout=10_000)
        await expect(plan.locator("li.step")).to_have_count(7)
        first = plan.locator('li.step[data-step="intercom"]')
        await first.locator(".step-form input").fill("3 passengers, all well")
        await first.locator("button[type=submit]").click()
        await expect(first).to_have_class(re.compile(r"\bdone\b"), timeout=10_000)
        await expect(first).to_contain_text("ana")
        await expect(first.locator(".note")).to_have_text("3 passengers, all well")
        await expect(page.locator("#plans-strip .plan-chip")).to_contain_text("1/7")
        comment = "vendor called at the gate intercom"
        await page.fill("#detail .comment-form textarea", comment)
        await page.click("#detail .comment-form button[type=submit]")
        await expect(page.locator("#detail .history li.comment")).to_contain_text(comment, timeout=10_000)
        await _shot(page, "2-plan")

        await page.click("#detail button.ack")
        await expect(row).to_have_class(_state("acknowledged"), timeout=10_000)
        await expect(row.locator("button.ack")).to_have_count(0)
        await expect(banner).to_be_hidden()
        await expect(page.locator("body")).to_have_attribute("data-sound", "idle")
        await expect(page).to_have_title("值班台", timeout=5_000)
        await expect(page.locator("#detail .history")).to_contain_text("ana")
        await page.keyboard.press("Escape")
        await expect(page.locator("#detail")).to_be_hidden()

        # Shelve from the row (a reason and minutes, 60 by default), find it under Shelved, put it back.
        await row.locator("button.shelve").click()
        form = page.locator("#alarms .shelve-form")
        await expect(form.locator('input[name="minutes"]')).to_have_value("60")
        await form.locator('input[name="reason"]').fill("vendor on site, car isolated")
        await form.locator("button[type=submit]").click()
        await expect(page.locator("#no-alarms")).to_be_visible(timeout=10_000)
        await page.click('#alarm-views button[data-view="shelved"]')
        await expect(row).to_have_class(_state("shelved"))
        await expect(row.locator(".mark.shelved")).to_contain_text("搁置至")
        await row.locator("button.unshelve").click()
        await expect(page.locator("#no-alarms")).to_be_visible(timeout=10_000)
        await page.click('#alarm-views button[data-view="open"]')
        await expect(row).to_have_class(_state("acknowledged"))

        await page.click("#lang")
        await expect(page.locator("h1")).to_have_text("Duty desk")
        await expect(row.locator(".state")).to_have_text("Acknowledged")
        await expect(page.locator("#who")).to_have_text("ana · duty")
        await _shot(page, "3-english")
        await page.reload()  # the token is kept for the browser session, the language for good
        await expect(page.locator("h1")).to_have_text("Duty desk")
        await expect(row.locator(".state")).to_have_text("Acknowledged", timeout=10_000)


async def test_a_task_moves_through_the_board_to_verified_and_a_complaint_is_logged(
    tmp_path: Path, mosquitto: Mosquitto, browser: Browser
) -> None:
    site_path, data = write_site(tmp_path, mosquitto.url, free_port()), tmp_path / "data"
    token = await _user(site_path, data, "ana", "duty")
    async with running_system(site_path, data) as (url, _site):
        page = await browser.new_page(viewport=DESK, timezone_id="Europe/London")
        await _log_in(page, url, token)
        await _sim(url, "POST", "/faults", {"device": "lift-1", "fault": "entrapment"})
        await page.click('#tabs button[data-tab="tasks"]')
        board = page.locator("#board")
        card = board.locator("article.task", has_text="Lift 1")
        await expect(card).to_have_attribute("data-status", "open", timeout=30_000)
        await expect(board.locator('[data-column="open"]')).to_contain_text("Lift 1")

        await card.locator(".task-title").click()  # open it: checklist and notes
        first = card.locator('.checklist li[data-item="0"]')
        await first.locator("input[type=checkbox]").check()
        await expect(first).to_contain_text("ana", timeout=10_000)
        await expect(first.locator("input[type=checkbox]")).to_be_checked()
        await card.locator(".note-form input").fill("vendor ETA 20 min")
        await card.locator(".note-form button").click()
        await expect(card.locator(".notes")).to_contain_text("vendor ETA 20 min", timeout=10_000)

        await card.locator(".assign-form select").select_option("li")  # the site's people, teams, vendors
        await card.locator(".assign-form button").click()
        await expect(card).to_have_attribute("data-status", "assigned", timeout=10_000)
        await expect(card).to_contain_text("李工")
        items = card.locator(".checklist li")
        for n in range(1, await items.count()):  # a task is verified with its checklist done
            await items.nth(n).locator("input[type=checkbox]").check()
            await expect(items.nth(n).locator("input[type=checkbox]")).to_be_checked(timeout=10_000)
        for status in ("in_progress", "resolved"):
            await card.locator(f'button.move[data-to="{status}"]').click()
            await expect(card).to_have_attribute("data-status", status, timeout=10_000)
        await expect(card.locator(".hint")).to_be_visible()  # the passengers are still trapped

        # Verifying before the condition clears: the server says no, and the page shows its words.
        await card.locator('button.move[data-to="verified"]').click()
        await expect(card.locator(".error")).to_contain_text("has not cleared", timeout=10_000)
        await expect(card).to_have_attribute("data-status", "resolved")
        await _shot(page, "4-verify-refused")

        await _sim(url, "DELETE", "/faults/lift-1")
        await expect(card.locator(".hint")).to_be_hidden(timeout=60_000)  # car at a floor, doors open
        await card.locator('button.move[data-to="verified"]').click()
        await expect(card).to_have_attribute("data-status", "verified", timeout=10_000)
        await expect(board.locator('[data-column="verified"]')).to_contain_text("Lift 1")
        await expect(card.locator("button.move")).to_have_count(0)

        # A resident's complaint, promised for yesterday: it is made overdue, and shows it.
        await page.click("#new-task-button")
        form = page.locator("#new-task")
        await form.locator('[data-key="new-title"]').fill("3-1201 kitchen leak")
        await form.locator('[data-key="new-priority"]').select_option("high")
        yesterday = datetime.now(SITE_ZONE) - timedelta(days=1)
        await form.locator('[data-key="new-due"]').fill(f"{yesterday:%Y-%m-%d}T09:00")
        await form.locator('[data-key="new-checklist"]').fill("shut the riser valve\ncheck the flat below")
        await form.locator("button[type=submit]").click()
        complaint = board.locator("article.task", has_text="3-1201 kitchen leak")
        await expect(complaint).to_have_attribute("data-status", "open", timeout=10_000)
        await expect(complaint).to_have_class(re.compile(r"\boverdue\b"))
        await expect(complaint.locator(".due")).to_contain_text(f"{yesterday:%m-%d} 09:00")
        await expect(complaint).to_contain_text("0/2")
        await expect(page.locator("#count-tasks")).to_have_text("1")
        await expect(form).to_be_hidden()
        await _shot(page, "5-tasks")


async def test_the_desk_says_when_it_is_offline_and_catches_up_from_the_last_event(
    tmp_path: Path, mosquitto: Mosquitto, browser: Browser
) -> None:
    site_path = write_site(tmp_path, mosquitto.url, free_port())
    async with running_system(site_path, tmp_path / "data") as (url, _site):
        context = await browser.new_context(viewport=DESK)
        page = await context.new_page()
        resumed_from: list[str | None] = []

        def note_stream(request: Request) -> None:
            if request.url.endswith("/api/v1/stream"):
                resumed_from.append(request.headers.get("last-event-id"))

        page.on("request", note_stream)
        await _log_in(page, url, TOKEN)
        await expect(page.locator("#heard")).to_contain_text(re.compile(r"\d+ (s|sec|秒)"))
        await _sim(url, "POST", "/faults", {"device": "pump-1", "fault": "overload_trip"})
        await expect(page.locator("#alarms tr.alarm.priority-high")).to_have_count(1, timeout=30_000)
        await expect(page.locator("#offline-banner")).to_be_hidden()

        # The network goes, and the stream cannot be had back: a red banner says so.
        await page.route("**/api/v1/stream", lambda route: route.abort())
        await context.set_offline(True)
        banner = page.locator("#offline-banner")
        await expect(banner).to_be_visible(timeout=10_000)
        await expect(page.locator("#link")).to_have_class("link offline")
        await _sim(url, "POST", "/faults", {"device": "lift-1", "fault": "entrapment"})  # while it is away
        await context.set_offline(False)
        await expect(banner).to_contain_text(re.compile(r"\d+ (s|sec|秒)"))  # how long since it last heard
        await _shot(page, "6-offline")
        await expect(banner).to_be_visible()  # online again, but the stream is still refused

        # The stream comes back: the page resumes from the last event it saw, and misses nothing.
        await page.unroute("**/api/v1/stream")
        await expect(banner).to_be_hidden(timeout=30_000)
        await expect(page.locator("#link")).to_have_class("link live")
        await expect(page.locator("#alarms tr.alarm.priority-emergency")).to_have_count(1, timeout=10_000)
        assert resumed_from[0] is None  # the first connection
        assert resumed_from[-1] is not None and resumed_from[-1].isdigit()


async def test_on_a_phone_the_alarms_come_first_with_big_buttons_and_a_viewer_gets_none(
    tmp_path: Path, mosquitto: Mosquitto, browser: Browser
) -> None:
    site_path, data = write_site(tmp_path, mosquitto.url, free_port()), tmp_path / "data"
    duty = await _user(site_path, data, "ana", "duty")
    viewer = await _user(site_path, data, "wu", "viewer")
    async with running_system(site_path, data) as (url, _site):
        await _sim(url, "POST", "/faults", {"device": "lift-1", "fault": "entrapment"})
        phone = await browser.new_page(viewport=PHONE, is_mobile=True, has_touch=True)
        await _log_in(phone, url, duty)
        card = phone.locator("#alarms tr.alarm.priority-emergency")
        await expect(card).to_be_visible(timeout=30_000)
        await expect(card).to_contain_text("Lift 1")
        for selector in ("#alarms tr.alarm.priority-emergency button.ack", '#tabs button[data-tab="tasks"]'):
            # Judged in the page until it holds: the live list re-renders, and a button being
            # replaced measures 0 for a moment. Buttons that stay too small time out here.
            await phone.wait_for_function(
                """(sel) => {
                    const r = document.querySelector(sel)?.getBoundingClientRect();
                    return r !== undefined && r.width >= 40 && r.height >= 40;
                }""",
                arg=selector,
                timeout=10_000,
            )
        await _shot(phone, "7-phone")

        # Tasks: one status column at a time, chosen by tabs.
        await phone.locator('#tabs button[data-tab="tasks"]').tap()
        await expect(phone.locator('#board .column[data-column="open"]')).to_be_visible()
        await expect(phone.locator('#board .column[data-column="assigned"]')).to_be_hidden()
        await phone.locator('#task-columns button[data-column="assigned"]').tap()
        await expect(phone.locator('#board .column[data-column="assigned"]')).to_be_visible()
        await expect(phone.locator('#board .column[data-column="open"]')).to_be_hidden()

        watcher = await browser.new_page(viewport=PHONE, is_mobile=True, has_touch=True)
        await _log_in(watcher, url, viewer)
        await expect(watcher.locator("#who")).to_have_text("wu · 只读")
        row = watcher.locator("#alarms tr.alarm.priority-emergency")
        await expect(row).to_be_visible(timeout=10_000)
        await expect(watcher.locator("#emergency-banner")).to_be_visible()
        await expect(row.locator("button")).to_have_count(0)
        await expect(watcher.locator("#emergency-banner button.ack")).to_have_count(0)
        await row.tap()
        await expect(watcher.locator("#detail .plan li.step")).to_have_count(7, timeout=10_000)
        await expect(watcher.locator("#detail button.ack, #detail .step-form, #detail .comment-form")).to_have_count(0)
        await watcher.locator("#detail button.close").tap()  # on a phone the detail covers the screen
        await expect(watcher.locator("#detail")).to_be_hidden()
        await watcher.locator('#tabs button[data-tab="tasks"]').tap()
        await expect(watcher.locator("#new-task-button")).to_be_hidden()
        await expect(watcher.locator("#board article.task", has_text="Lift 1")).to_be_visible()
        await expect(watcher.locator("#board article.task form, #board article.task button.move")).to_have_count(0)


async def test_the_device_board_shows_live_values_lost_devices_and_a_trend(
    tmp_path: Path, mosquitto: Mosquitto, browser: Browser
) -> None:
    async with _on_desk_screen(tmp_path, mosquitto, browser) as (url, page, refused):
        await _log_in(page, url, TOKEN)
        await page.click('#tabs button[data-tab="devices"]')
        pump = page.locator('#devices [data-building="B2"] [data-system="water_supply"] [data-device="pump-1"]')
        pressure = pump.locator('dd[data-point="outlet_pressure"]')
        await expect(pressure).to_have_class("q-good", timeout=10_000)
        await expect(pressure).to_contain_text("MPa")
        await expect(page.locator('#devices [data-building="B1"] [data-device="lift-1"]')).to_be_visible()

        await pressure.locator("button.value").click()
        chart = page.locator("#trend svg.trend")
        await expect(chart).to_be_visible(timeout=10_000)
        await expect(chart.locator("polyline.mean, circle.mean-dot").first).to_be_attached()
        await expect(page.locator("#trend h2")).to_contain_text("Pump 1")
        await page.click('#trend button[data-range="1h"]')
        await expect(page.locator('#trend button[data-range="1h"]')).to_have_attribute("aria-pressed", "true")
        await expect(chart.locator("polyline.mean, circle.mean-dot").first).to_be_attached(timeout=10_000)
        await expect(page.locator("#trend .chart")).to_contain_text("MPa")
        await _shot(page, "8-trend")
        await page.keyboard.press("Escape")
        await expect(page.locator("#trend")).to_be_hidden()

        # An engineer takes the pump out of service, with a reason, and puts it back.
        await pump.locator("button", has_text="停用检修").click()
        await pump.locator("form input").fill("bearing change")
        await pump.locator("form button[type=submit]").click()
        await expect(pump).to_have_class(re.compile(r"\boos\b"), timeout=10_000)
        await expect(pump.locator(".oos-note")).to_contain_text("bearing change")
        await pump.locator("button", has_text="恢复使用").click()
        await expect(pump).not_to_have_class(re.compile(r"\boos\b"), timeout=10_000)

        # The pump stops answering: its last values stay, marked as not live (stale or no communication).
        await _sim(url, "POST", "/faults", {"device": "pump-1", "fault": "comm_loss"})
        await expect(pressure).to_have_class(re.compile(r"^q-(stale|no_comm)$"), timeout=30_000)
        await expect(pressure.locator(".quality")).to_have_text(re.compile("^(过期|通讯中断)$"))
        await _shot(page, "9-devices")
        assert refused == []


async def test_the_morning_briefing_is_shown_in_the_desk_language_and_can_be_printed(
    tmp_path: Path, mosquitto: Mosquitto, browser: Browser
) -> None:
    async with _on_desk_screen(tmp_path, mosquitto, browser) as (url, page, refused):
        asked: list[Request] = []
        page.on("request", lambda request: asked.append(request))
        await _log_in(page, url, TOKEN)
        await page.click('#tabs button[data-tab="reports"]')
        await expect(page.locator("#report-date")).to_have_value("")  # the server's default: last night
        report = page.frame_locator("#report")
        await expect(report.locator("body")).to_contain_text("Test estate", timeout=15_000)
        await expect(report.locator("body")).to_contain_text("晨会简报")
        # The report's own stylesheet applies inside the desk's policy (A4 width, its table borders).
        await expect(report.locator("body")).to_have_css("max-width", re.compile(r"^79[0-9]"))
        assert refused == []
        await expect(page.locator("#report-print")).to_be_enabled()
        await _shot(page, "10-briefing")
        # A headless browser has no print dialog: note the call instead (the one stand-in here).
        await page.evaluate("document.querySelector('#report').contentWindow.print = () => { window.printed = true; }")
        await page.click("#report-print")
        assert await page.evaluate("window.printed === true")
        async with page.expect_download() as downloading:  # as property companies exchange them
            await page.click("#report-xlsx")
        download = await downloading.value
        assert download.suggested_filename.startswith("briefing-") and download.suggested_filename.endswith(".xlsx")
        saved = tmp_path / download.suggested_filename  # openpyxl goes by the file's extension
        await download.save_as(saved)
        workbook = openpyxl.load_workbook(saved)
        assert "晨会简报" in str(workbook.worksheets[0]["A1"].value)

        await page.click("#lang")  # the report is read again, in English
        await expect(report.locator("body")).to_contain_text("briefing", ignore_case=True, timeout=15_000)
        briefings = [r for r in asked if "/api/v1/reports/briefing?" in r.url]
        assert [parse_qs(urlsplit(r.url).query) for r in briefings] == [
            {"format": [fmt], "lang": [lang]} for fmt, lang in (("html", "zh"), ("xlsx", "zh"), ("html", "en"))
        ]
        assert all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in briefings)
        assert not any(TOKEN in r.url for r in asked)  # the token travels in a header, never in a URL


async def test_a_wrong_token_is_refused_on_the_login_page(
    tmp_path: Path, mosquitto: Mosquitto, browser: Browser
) -> None:
    site_path = write_site(tmp_path, mosquitto.url, free_port())
    async with running_system(site_path, tmp_path / "data") as (url, _site):
        page = await browser.new_page()
        await page.goto(url + "/")
        await page.fill("#token", "not-the-token")
        await page.click("#login-form button[type=submit]")
        await expect(page.locator("#login-error")).not_to_be_empty(timeout=10_000)
        await expect(page.locator("#login")).to_be_visible()
        await expect(page.locator("#desk")).to_be_hidden()


async def test_the_api_docs_render_from_the_service_itself_under_their_policy(
    tmp_path: Path, mosquitto: Mosquitto, browser: Browser
) -> None:
    async with _on_desk_screen(tmp_path, mosquitto, browser) as (url, page, refused):
        asked: list[str] = []
        page.on("request", lambda request: asked.append(request.url))
        await page.goto(url + "/api/docs")
        await expect(page.locator(".swagger-ui .info .title")).to_contain_text("Facility monitoring", timeout=15_000)
        await expect(page.locator(".opblock-tag", has_text="alarms")).to_be_visible()
        assert refused == []
        assert asked and all(u.startswith(url) or u.startswith("data:") for u in asked), asked  # no CDN
