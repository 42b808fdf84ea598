"""Equipment records (设备台账) on the desk in a real browser (Debian's Chromium driven by
Playwright): an engineer fills in a device's record and it is stored; the record prints as a device
card (print media emulated: the card and nothing else); in zh mode the record's words are all
Chinese; duty staff read it without an edit form; it fits a phone; the ledger downloads.

The browser's print dialog is the one thing stood in for: `window.print` is replaced by a counter,
as no print dialog can be driven headless."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
from playwright.async_api import Browser, Page, expect

from facility.netutil import free_port
from tests.api.test_desk_browser import DESK, PHONE, _log_in, _shot, _user
from testsupport.servers import Mosquitto
from testsupport.system import TOKEN, running_system, write_site

VENDORS = """\
vendors:
  - {id: pumps-co, name: 水泵维保公司 / Pump service}
  - {id: lifts-co, name: 电梯维保公司 / Lift service}
"""
COUNT_PRINTS = "window.printed = 0; window.print = () => { window.printed += 1; };"
LATIN = re.compile(r"[A-Za-z]")


async def _record_of(page: Page, device: str) -> None:
    await page.click('#tabs button[data-tab="devices"]')
    await page.locator(f'article.device[data-device="{device}"] button.record').click()
    await expect(page.locator("#equipment .record-fields")).to_be_visible(timeout=10_000)


async def test_an_engineer_fills_in_a_record_that_is_stored_and_prints_as_a_device_card(
    tmp_path: Path, mosquitto: Mosquitto, browser: Browser
) -> None:
    site, data = write_site(tmp_path, mosquitto.url, free_port(), extra=VENDORS), tmp_path / "data"
    engineer = await _user(site, data, "eng-li", "engineer")
    async with running_system(site, data) as (url, _site):
        page = await browser.new_page(viewport=DESK, timezone_id="Europe/London")
        await page.add_init_script(COUNT_PRINTS)
        await _log_in(page, url, engineer)
        await _record_of(page, "pump-1")
        dialog = page.locator("#equipment")
        await expect(dialog.locator("h2")).to_contain_text("设备台账")
        await expect(dialog).to_contain_text("尚未建档")

        await dialog.locator("button.edit-record").click()
        form = dialog.locator("form.record-form")
        await form.locator('[name="model"]').fill("CDLF 32-40")
        await form.locator('[name="manufacturer"]').fill("南方泵业")
        await form.locator('[name="serial_number"]').fill("SN-2021-0042")
        await expect(form.locator('[name="install_date"]')).to_have_attribute("type", "date")
        await form.locator('[name="install_date"]').fill("2021-06-01")
        await form.locator('[name="warranty_end"]').fill("2024-05-31")
        await expect(form.locator('[name="vendor"] option')).to_have_text(["未指定", "水泵维保公司", "电梯维保公司"])
        await form.locator('[name="vendor"]').select_option("pumps-co")
        await form.locator('[name="contract"]').fill("WB-2025-007")
        await form.locator('[name="location"]').fill("水泵房东侧")
        await form.locator('[name="notes"]').fill("变频器 2023 年更换")
        await form.locator('button[type="submit"]').click()

        fields = dialog.locator(".record-fields")
        await expect(fields).to_contain_text("CDLF 32-40", timeout=10_000)
        await expect(fields).to_contain_text("水泵维保公司")
        await expect(fields).to_contain_text("已过保")  # the warranty ran out in 2024
        await expect(dialog.locator(".record-history li").first).to_contain_text("台账修改")
        async with httpx.AsyncClient(base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {engineer}"}) as http:
            stored = (await http.get("/devices/pump-1/record")).json()
        assert {k: stored[k] for k in ("model", "manufacturer", "serial_number", "vendor", "contract", "notes")} == {
            "model": "CDLF 32-40",
            "manufacturer": "南方泵业",
            "serial_number": "SN-2021-0042",
            "vendor": "pumps-co",
            "contract": "WB-2025-007",
            "notes": "变频器 2023 年更换",
        }
        assert (stored["install_date"], stored["warranty_end"], stored["contract_end"]) == (
            "2021-06-01",
            "2024-05-31",
            None,
        )
        assert stored["updated_by"] == "eng-li"

        # An end before the install date is refused before it is sent, in the desk's words.
        await dialog.locator("button.edit-record").click()
        await form.locator('[name="contract_end"]').fill("2020-01-01")
        await form.locator('button[type="submit"]').click()
        await expect(dialog.locator(".error")).to_have_text("合同到期不能早于安装日期")
        await form.locator('button[type="button"]').click()  # cancel

        await dialog.locator("button.print-card").click()
        assert await page.evaluate("window.printed") == 1
        await page.emulate_media(media="print")
        card = page.locator("#device-card")
        await expect(card).to_be_visible()
        for shown in (
            "设备卡",
            "CDLF 32-40",
            "出厂编号",
            "SN-2021-0042",
            "2021-06-01",
            "水泵维保公司",
            "水泵房东侧",
            "台账修改",
        ):
            await expect(card).to_contain_text(shown)
        await expect(page.locator("#desk")).to_be_hidden()
        await expect(dialog).to_be_hidden()
        await _shot(page, "device-card-print")
        await page.emulate_media(media="screen")
        await expect(card).to_be_hidden()


async def test_in_zh_the_record_speaks_chinese_duty_staff_read_it_only_and_it_fits_a_phone(
    tmp_path: Path, mosquitto: Mosquitto, browser: Browser
) -> None:
    site, data = write_site(tmp_path, mosquitto.url, free_port(), extra=VENDORS), tmp_path / "data"
    duty = await _user(site, data, "ana", "duty")
    async with running_system(site, data) as (url, _site):
        async with httpx.AsyncClient(base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {duty}"}) as http:
            # duty staff cannot write a record; an engineer's is what they read
            refused = await http.put("/devices/lift-1/record", json={"model": "3300"})
            assert refused.status_code == 403
            made = await http.post("/tasks", json={"title": "轿厢异响", "kind": "repair", "device": "lift-1"})
            assert made.status_code == 201
            assigned = await http.post(f"/tasks/{made.json()['id']}/assign", json={"assignee": "wu"})
            assert assigned.status_code == 200
        engineer = await _user(site, data, "eng-li", "engineer")
        async with httpx.AsyncClient(base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {engineer}"}) as http:
            body = {"model": "3300", "manufacturer": "迅达", "install_date": "2019-03-01", "vendor": "lifts-co"}
            assert (await http.put("/devices/lift-1/record", json=body)).status_code == 200

        phone = await browser.new_page(viewport=PHONE, is_mobile=True, has_touch=True, timezone_id="Europe/London")
        await _log_in(phone, url, duty)  # the desk speaks Chinese by default
        await _record_of(phone, "lift-1")
        dialog = phone.locator("#equipment")
        await expect(dialog.locator("button.edit-record")).to_have_count(0)
        await expect(dialog.locator("form")).to_have_count(0)
        await expect(dialog.locator(".record-fields")).to_contain_text("迅达")
        history = dialog.locator(".record-history li")
        await expect(history).to_have_count(3)  # newest first: the record saved, the task assigned, made
        await expect(history.nth(0)).to_contain_text("台账修改")
        await expect(history.nth(1)).to_contain_text("派单")
        await expect(history.nth(2)).to_contain_text("创建工单")
        await expect(history.nth(2).locator("button.link-button")).to_have_text("轿厢异响")

        words = dialog.locator("dt, button, h3, .chip, strong, label, .actions, .record-trends > span")
        stray = [w for w in await words.all_inner_texts() if LATIN.search(w) and w.strip() != "×"]
        assert stray == [], stray

        width = await phone.evaluate("document.querySelector('#equipment').getBoundingClientRect().width")
        assert width <= 390
        overflow = await phone.evaluate(
            "(() => { const d = document.querySelector('#equipment'); return d.scrollWidth - d.clientWidth; })()"
        )
        assert overflow <= 0
        await _shot(phone, "equipment-phone")

        # a task entry opens the task on the board
        await history.nth(2).locator("button.link-button").click()
        await expect(dialog).to_be_hidden()
        await expect(phone.locator("article.task", has_text="轿厢异响")).to_be_visible(timeout=10_000)


async def test_the_ledger_downloads_from_the_device_board(
    tmp_path: Path, mosquitto: Mosquitto, browser: Browser
) -> None:
    site, data = write_site(tmp_path, mosquitto.url, free_port()), tmp_path / "data"
    async with running_system(site, data) as (url, _site):
        page = await browser.new_page(viewport=DESK, accept_downloads=True)
        await _log_in(page, url, TOKEN)
        await page.click('#tabs button[data-tab="devices"]')
        button = page.locator("#ledger-csv")
        await expect(button).to_have_text("导出台账 CSV")
        async with page.expect_download() as started:
            await button.click()
        download = await started.value
        assert download.suggested_filename.endswith(".csv")
        text = await asyncio.to_thread(Path(await download.path()).read_text, encoding="utf-8-sig")
        assert text.splitlines()[0].startswith("栏目,设备编号,设备名称")
        assert [line.split(",")[1] for line in text.splitlines()[1:]] == ["pump-1", "lift-1"]
        await expect(page.locator("#ledger-xlsx")).to_have_text("导出台账 Excel")
