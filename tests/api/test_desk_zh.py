"""The desk in Chinese, all of it (issue #14): a duty officer who reads no English works a night of
alarms, tasks, plans and devices and meets no English word that is not an id, a unit or a name the
site file gives only in Latin letters.

Runs the whole system with simulated plant in Chromium (Playwright), faults injected through /sim.
"""

from __future__ import annotations

import re
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from playwright.async_api import Browser, Page, expect

from api.routes.alarms import history_text
from facility.mqtt import MqttClient
from facility.netutil import free_port
from facility.records import AlarmRecord, HistoryEntry
from facility.vocabulary import Text
from tests.api.test_desk_browser import DESK, _log_in, _shot, _sim, _user
from testsupport.servers import Mosquitto
from testsupport.system import TOKEN, eventually, running_system

ADMIN = {"Authorization": f"Bearer {TOKEN}"}

# Units and measure names the desk shows as the trade writes them, in either language.
UNITS = {"kPa", "MPa", "m", "mm", "A", "V", "kW", "kWh", "Hz", "lx", "rpm", "kvar"}
UNIT_MARKS = ("m³/h", "℃", "°C", "mm/s", "m³", "%")
# File formats named on buttons, and standards cited in messages: written so in Chinese too.
NAMES = {"CSV", "Excel", "Markdown", "GB/T", "ISO"}  # file formats and standards, named as written
LATIN = re.compile(r"[A-Za-z][A-Za-z0-9_./\-]*")


def _site(folder: Path, broker_url: str, modbus_port: int) -> Path:
    """A demo-like estate named in Chinese: two lifts of one vendor (whose name has both languages),
    a booster pump and a fire panel on Modbus."""
    path = folder / "site.yaml"
    path.write_text(
        f"""
site: {{id: zh-estate, name: 示范花园小区, timezone: Asia/Shanghai}}
broker: {{url: "{broker_url}"}}
stores: {{telemetry: var/telemetry.db, ops: "sqlite+aiosqlite:///var/ops.db"}}
vendors:
  - {{id: otis, name: 奥的斯电梯维保 / Otis service, arrive_within: 30m}}
devices:
  - id: pump-b2-1
    name: 2号楼生活水泵1
    profile: booster_pump
    location: {{building: B2, floor: B1, room: 生活水泵房}}
    modbus: {{host: 127.0.0.1, port: {modbus_port}, unit: 1, interval: 200ms, timeout: 500ms}}
  - id: fire-panel
    name: 消防报警主机
    profile: fire_panel
    location: {{building: B1, floor: "1", room: 消防控制室}}
    modbus: {{host: 127.0.0.1, port: {modbus_port}, unit: 2, interval: 200ms, timeout: 500ms}}
  - id: elevator-b1-1
    name: 1号楼1号电梯
    profile: elevator
    location: {{building: B1, floor: 机房}}
    vendor: otis
    mqtt: {{topic: zh/lifts/elevator-b1-1, interval: 200ms}}
  - id: elevator-b1-2
    name: 1号楼2号电梯
    profile: elevator
    location: {{building: B1, floor: 机房}}
    vendor: otis
    mqtt: {{topic: zh/lifts/elevator-b1-2, interval: 200ms}}
"""
    )
    return path


def _latin_names(site: Path) -> set[str]:
    """Words the site file gives only in Latin letters (a Latin proper name is shown as written)."""
    return set(LATIN.findall(site.read_text()))


def _foreign(text: str, allowed: set[str]) -> list[str]:
    """The Latin words of `text` that are neither ids (ASCII with - or a digit), units nor allowed names."""
    for mark in UNIT_MARKS:
        text = text.replace(mark, " ")
    found = []
    for word in LATIN.findall(text):
        word = word.rstrip(".-/")
        if not word or word in UNITS or word in NAMES or word in allowed:
            continue
        if re.search(r"[-\d]", word):
            continue  # an id: pump-b2-1, elevator-entrapment, B2
        found.append(word)
    return found


async def _visible_text(page: Page) -> str:
    """What a person sees now: the page's rendered text (hidden parts have none) and its title."""
    return str(await page.evaluate("() => document.title + '\\n' + document.body.innerText"))


async def _alarms(http: httpx.AsyncClient, **query: str) -> list[dict[str, object]]:
    answer = (await http.get("/api/v1/alarms", params=query)).json()
    return list(answer["items"])


async def test_a_night_in_chinese_shows_no_english_word(tmp_path: Path, mosquitto: Mosquitto, browser: Browser) -> None:
    site_path, data = _site(tmp_path, mosquitto.url, free_port()), tmp_path / "data"
    token = await _user(site_path, data, "ana", "duty")
    # Names as written: the site file's Latin-only names (the vendor's has a Chinese form), the
    # users' names (ana, and `duty` of the fixed token), and the switch to English, named in English.
    allowed = (_latin_names(site_path) - {"Otis", "service"}) | {"ana", "duty", "English"}
    seen: dict[str, str] = {}
    async with running_system(site_path, data) as (url, _site_model):
        page = await browser.new_page(viewport=DESK, timezone_id="Europe/London")
        await _log_in(page, url, token)
        await expect(page.locator("h1")).to_have_text("值班台")  # Chinese is the desk's first language

        # The night: two lifts trap passengers, a pump loses pressure; one lift alarm is shelved,
        # the pump's is acknowledged and returns to normal (closed).
        for lift in ("elevator-b1-1", "elevator-b1-2"):
            await _sim(url, "POST", "/faults", {"device": lift, "fault": "entrapment"})
        await _sim(url, "POST", "/faults", {"device": "pump-b2-1", "fault": "low_pressure"})
        async with httpx.AsyncClient(base_url=url, headers=ADMIN) as http:

            async def three() -> list[dict[str, object]] | None:
                found = await _alarms(http)
                return found if len(found) == 3 else None

            by_device = {str(a["device"]): a for a in await eventually(three, 30)}
            pump, lift2 = by_device["pump-b2-1"], by_device["elevator-b1-2"]
            (await http.post(f"/api/v1/alarms/{pump['id']}/ack")).raise_for_status()
            await _sim(url, "DELETE", "/faults/pump-b2-1")
            shelve = {"reason": "维保人员已到场", "minutes": 60}
            (await http.post(f"/api/v1/alarms/{lift2['id']}/shelve", json=shelve)).raise_for_status()

            async def closed() -> list[dict[str, object]] | None:
                return await _alarms(http, open="false", state="normal") or None

            await eventually(closed, 30)

        # Alarms: open, shelved, closed; an alarm's detail with its plan and history.
        row = page.locator("#alarms tbody tr.alarm.priority-emergency")
        await expect(row).to_have_count(1, timeout=10_000)
        await row.click()
        await expect(page.locator("#detail .plan li.step")).to_have_count(7, timeout=10_000)
        await expect(page.locator("#detail .history li").first).to_be_visible()
        seen["alarm detail"] = await _visible_text(page)
        await _shot(page, "zh-1-alarm")
        await page.keyboard.press("Escape")
        for view in ("shelved", "closed"):
            await page.click(f'#alarm-views button[data-view="{view}"]')
            await expect(page.locator("#alarms tbody tr.alarm")).to_have_count(1, timeout=10_000)
            await page.locator("#alarms tbody tr.alarm").click()
            await expect(page.locator("#detail .history li").first).to_be_visible(timeout=10_000)
            seen[f"{view} alarm"] = await _visible_text(page)
            await page.keyboard.press("Escape")
        await page.click('#alarm-views button[data-view="open"]')

        # Tasks, each opened: checklists, team and vendor.
        await page.click('#tabs button[data-tab="tasks"]')
        cards = page.locator("#board article.task")
        await expect(cards).to_have_count(3, timeout=10_000)
        for k in range(3):
            await cards.nth(k).locator(".task-title").click()
        await expect(page.locator("#board article.task .checklist li").first).to_be_visible()
        seen["tasks"] = await _visible_text(page)
        await _shot(page, "zh-2-tasks")

        # Devices, and one device's detail (a trend).
        await page.click('#tabs button[data-tab="devices"]')
        fire = page.locator("#devices article", has_text="消防报警主机")
        await expect(fire).to_contain_text("正常", timeout=10_000)  # an enum value: a fire zone's state
        seen["devices"] = await _visible_text(page)
        await page.locator("#devices article", has_text="2号楼生活水泵1").locator("button.value").first.click()
        await expect(page.locator("#trend svg.trend")).to_be_visible(timeout=10_000)
        seen["device trend"] = await _visible_text(page)
        await _shot(page, "zh-3-devices")
        await page.keyboard.press("Escape")

        # Reports: the tab's own words.
        await page.click('#tabs button[data-tab="reports"]')
        await expect(page.locator("#report-print")).to_be_enabled(timeout=20_000)
        seen["reports"] = await _visible_text(page)

    english = {view: words for view, text in seen.items() if (words := _foreign(text, allowed))}
    assert not english, f"English on the Chinese desk: {english}"
    everything = "\n".join(seen.values())
    rule_ids = {"elevator-entrapment", "booster-pump-low-pressure"}
    assert not [r for r in rule_ids if r in everything], "a rule is shown by its title, not its id"
    for word in ("11 s前", "设计抑制", "报警泛滥", "激活"):
        assert word not in everything
    assert "奥的斯电梯维保" in seen["tasks"]
    assert re.search(r"\d+ (秒|分钟)前", everything), "relative times read as Chinese does"


ALARM = AlarmRecord(
    id=1,
    rule="booster-pump-low-pressure",
    device="pump-1",
    priority="high",
    state="unacknowledged",
    active=True,
    acknowledged=False,
    title=Text("加压泵出口压力低", "Booster pump outlet pressure low"),
    message=Text("出口压力低", "outlet pressure low"),
    raised_at=0,
    changed_at=0,
    acked_at=None,
    acked_by=None,
    cleared_at=None,
    activated_at=0,
    shelved=False,
    shelved_until=None,
    shelved_by=None,
    shelve_reason=None,
    suppressed=False,
    out_of_service=False,
    chattering=False,
    escalated=False,
)
SHANGHAI = ZoneInfo("Asia/Shanghai")


def _said(action: str, detail: str) -> dict[str, str]:
    return history_text(HistoryEntry(0, action, "rules", "", detail), ALARM, SHANGHAI)


def test_an_alarms_history_is_said_in_both_languages_from_what_the_store_wrote() -> None:
    assert _said("raised", "outlet pressure low") == {"zh": ALARM.message.zh, "en": ALARM.message.en}
    assert _said("escalated", "not acknowledged within 120 s") == {
        "zh": "超过 2 分钟未确认",
        "en": "not acknowledged within 120 s",
    }
    assert _said("escalated", "not acknowledged within 90 s")["zh"] == "超过 90 秒未确认"
    assert _said("chattering", "6 activations within 10 min")["zh"] == "10 分钟内报警 6 次"
    shelved = _said("shelved", "until 2026-11-28 06:30:00Z: 传感器更换中")  # site time: 14:30
    assert shelved == {"zh": "搁置至 2026-11-28 14:30：传感器更换中", "en": "until 2026-11-28 14:30: 传感器更换中"}
    assert _said("comment", "vendor ETA 20 min") == {"zh": "vendor ETA 20 min", "en": "vendor ETA 20 min"}


async def test_an_engineer_reads_the_dead_letters_in_chinese(
    tmp_path: Path, mosquitto: Mosquitto, browser: Browser
) -> None:
    """The dead letters, on a tab of their own for engineers (duty staff do not see it): a payload
    that is not JSON and a topic no device has, each said in Chinese, the parser's own English one
    click away; on a phone each letter is a card and nothing runs off the screen."""
    site_path, data = _site(tmp_path, mosquitto.url, free_port()), tmp_path / "data"
    engineer, duty = await _user(site_path, data, "eng", "engineer"), await _user(site_path, data, "ana", "duty")
    allowed = _latin_names(site_path) | {"eng", "English", "MQTT", "Modbus", "JSON", "online", "offline"}
    async with running_system(site_path, data) as (url, _site_model):
        client = MqttClient("127.0.0.1", mosquitto.port)
        await client.start()
        headers = {"Authorization": f"Bearer {engineer}"}
        try:
            client.publish("zh/lifts/elevator-b1-1", b"{not json", qos=1)
            client.publish("zh/lifts/elevator-b9-9", b"{}", qos=1)  # under the site's prefix, no device's
            async with httpx.AsyncClient(base_url=url, headers=headers) as http:

                async def two() -> list[dict[str, object]] | None:
                    items = (await http.get("/api/v1/dead-letters")).json()["items"]
                    return items if len(items) == 2 else None

                letters = await eventually(two, 30)
        finally:
            await client.stop()
        assert {str(d["key"]) for d in letters} == {"zh/lifts/elevator-b1-1", "zh/lifts/elevator-b9-9"}

        page = await browser.new_page(viewport=DESK)
        await _log_in(page, url, duty)
        await expect(page.locator('#tabs button[data-tab="letters"]')).to_be_hidden()
        await page.close()

        page = await browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
        await _log_in(page, url, engineer)
        await page.click('#tabs button[data-tab="letters"]')
        rows = page.locator("#letters tbody tr")
        await expect(rows).to_have_count(2, timeout=10_000)
        await expect(page.locator("#letters")).to_contain_text("不是 JSON 格式")
        await expect(page.locator("#letters")).to_contain_text("没有设备使用此主题")
        await expect(page.locator("#letters")).to_contain_text("1号楼1号电梯 (elevator-b1-1)")
        english = _foreign(await _visible_text(page), allowed)
        assert not english, f"English on the Chinese dead letters: {english}"
        wide = await page.evaluate("() => document.documentElement.scrollWidth")
        assert wide <= 390, f"the page is {wide} px wide on a 390 px phone"
        not_json = rows.filter(has_text="不是 JSON 格式")
        await not_json.locator("td.reason summary").click()
        await expect(not_json.locator("td.reason pre")).to_contain_text("not JSON: ")
        await _shot(page, "zh-letters-phone")
