"""The task board in a real browser (Debian's Chromium driven by Playwright): the assignee is picked
from the site's people, teams and vendors in the desk's language, verifying names the checklist
items still open, and only a manager may verify anyway, with a reason the card then shows."""

from __future__ import annotations

from pathlib import Path

import httpx
from playwright.async_api import Browser, Page, expect

from facility.netutil import free_port
from tests.api.test_desk_browser import DESK, _log_in, _user
from testsupport.servers import Mosquitto
from testsupport.system import TOKEN, running_system, write_site

PEOPLE = """\
vendors:
  - {id: lifts-co, name: 电梯维保公司 / Lift service}
"""


async def _board(browser: Browser, url: str, token: str) -> Page:
    page = await browser.new_page(viewport=DESK, timezone_id="Europe/London")
    await _log_in(page, url, token)
    await page.click('#tabs button[data-tab="tasks"]')
    return page


async def test_the_assignee_is_picked_and_verifying_over_an_open_checklist_takes_a_manager(
    tmp_path: Path, mosquitto: Mosquitto, browser: Browser
) -> None:
    site, data = write_site(tmp_path, mosquitto.url, free_port(), extra=PEOPLE), tmp_path / "data"
    duty = await _user(site, data, "ana", "duty")
    manager = await _user(site, data, "zhou", "manager")
    async with running_system(site, data) as (url, _site):
        async with httpx.AsyncClient(base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            body = {"title": "水箱巡检", "kind": "inspection", "checklist": ["读液位", "检查紫外灯"]}
            made = await http.post("/tasks", json=body)
            assert made.status_code == 201

        page = await _board(browser, url, duty)  # the desk speaks Chinese by default
        card = page.locator("article.task", has_text="水箱巡检")
        picker = card.locator(".assign-form select")
        await expect(picker.locator("optgroup")).to_have_count(3)
        await expect(picker.locator('optgroup[label="人员"] option')).to_have_text(["李工", "吴师傅"])
        await expect(picker.locator('optgroup[label="维保单位"] option')).to_have_text(["电梯维保公司"])
        await picker.select_option("li")
        await card.locator(".assign-form button").click()
        await expect(card).to_have_attribute("data-status", "assigned", timeout=10_000)
        for status in ("in_progress", "resolved"):
            await card.locator(f'button.move[data-to="{status}"]').click()
            await expect(card).to_have_attribute("data-status", status, timeout=10_000)

        await expect(card.locator(".checklist-open .open-items li")).to_have_text(["读液位", "检查紫外灯"])
        await expect(card.locator(".override-form")).to_have_count(0)  # a duty officer cannot override
        await card.locator('button.move[data-to="verified"]').click()
        await expect(card.locator(".error")).to_contain_text("检查项未完成", timeout=10_000)
        await expect(card).to_have_attribute("data-status", "resolved")

        boss = await _board(browser, url, manager)
        card = boss.locator("article.task", has_text="水箱巡检")
        form = card.locator(".override-form")
        await form.locator("input").fill("紫外灯待更换")
        await form.locator("button").click()
        await expect(card).to_have_attribute("data-status", "verified", timeout=10_000)
        await card.locator(".task-title").click()
        await expect(card.locator(".override")).to_contain_text("zhou", timeout=10_000)
        await expect(card.locator(".override")).to_contain_text("紫外灯待更换")
        # A phone offers its camera for a photo, or a picture or PDF it holds.
        upload = card.locator(".attachments input[type=file]")
        await expect(upload).to_have_attribute("accept", "image/*,application/pdf")
        await expect(upload).to_have_attribute("capture", "environment")
        await expect(card.locator(".attachments")).to_contain_text("上传照片或文件")
