"""On a phone, in a real browser (Debian's Chromium driven by Playwright): a duty officer adds a
photo to a step of the emergency plan an alarm opened, sees it listed on the step and opens it;
and the alarm list's "导出 Excel" saves the rows the view shows, which openpyxl reads back."""

from __future__ import annotations

from pathlib import Path

import openpyxl
from playwright.async_api import Browser, expect

from api.app import create_app
from api.auth import TokenAuth
from facility.store.ops import OpsStore
from facility.store.plans import NewStep, PlanStore
from facility.store.users import Role, UserStore
from rules.plans import PlanService, step_files
from tests.api.context import without_plant
from tests.api.health_app import served
from tests.api.test_desk_browser import PHONE, _log_in
from tests.reports.conftest import Seed, estate_in

JPEG = b"\xff\xd8\xff\xe0" + bytes(2000)  # the start of a phone's photo
STEPS = [NewStep("free-passengers", "解救被困人员", "free the passengers", 15 * 60 * 1_000_000_000)]


async def test_a_photo_is_added_to_a_plan_step_from_a_phone_and_the_alarm_list_exports_to_excel(
    tmp_path: Path, browser: Browser
) -> None:
    site = estate_in(tmp_path)
    ops = OpsStore(f"sqlite+aiosqlite:///{tmp_path / 'ops.db'}", site="t")
    await ops.start()
    try:
        seed = Seed(ops)
        alarm = await seed.raise_("entrapment", "lift-1", "2026-10-05 10:00")
        await seed.raise_("sump-high", "sump-1", "2026-10-05 10:05")
        store = PlanStore(ops)
        plan, _ = await store.open("entrapment", ("电梯困人", "Passengers trapped"), alarm, "lift-1", 1, STEPS)
        token = await UserStore(ops).add("ana", Role.DUTY)
        ctx = without_plant(site, ops, tmp_path / "journal")
        files = tmp_path / "attachments"
        ctx.rules.plans = PlanService(store, ctx.bus, {}, files=step_files(site, files))
        async with served(create_app(ctx, TokenAuth({}, UserStore(ops)))) as url:
            phone = await browser.new_page(viewport=PHONE, is_mobile=True, has_touch=True, accept_downloads=True)
            await _log_in(phone, url, token)
            await phone.locator(f'#alarms tr[data-alarm="{alarm}"]').tap()
            step = phone.locator('#detail li.step[data-step="free-passengers"]')
            upload = step.locator(".attachments input[type=file]")
            await expect(upload).to_have_attribute("accept", "image/*,application/pdf", timeout=10_000)
            await expect(upload).to_have_attribute("capture", "environment")
            await expect(step.locator(".attachments label")).to_contain_text("上传照片或文件")
            await upload.set_input_files(files=[{"name": "轿厢.jpg", "mimeType": "image/jpeg", "buffer": JPEG}])
            link = step.locator(".attachments li[data-attachment] button")
            await expect(link).to_have_text("轿厢.jpg", timeout=10_000)
            async with phone.expect_download() as opened:
                await link.tap()
            photo = tmp_path / "photo.jpg"
            await (await opened.value).save_as(photo)
            kept = [p.read_bytes() for p in (files / "plan-steps").iterdir()]
            assert (photo.read_bytes(), kept) == (JPEG, [JPEG])  # given back as kept in the data folder
            (listed,) = await ctx.rules.plans.attachments(plan.id, "free-passengers")
            assert (listed.name, listed.added_by) == ("轿厢.jpg", "ana")

            await phone.locator("#detail button.close").tap()
            export = phone.locator('#alarm-exports button[data-format="xlsx"]')
            await expect(export).to_have_text("导出 Excel")
            async with phone.expect_download() as saved:
                await export.tap()
            sheet = tmp_path / "alarms.xlsx"  # openpyxl goes by the file's extension
            await (await saved.value).save_as(sheet)
            rows = list(openpyxl.load_workbook(sheet).worksheets[1].iter_rows(values_only=True))
            assert rows[0][:4] == ("报警", "发生时间", "优先级", "状态")
            assert sorted((r[0], r[2]) for r in rows[1:]) == [(alarm, "紧急"), (alarm + 1, "低")]
    finally:
        await ops.close()
