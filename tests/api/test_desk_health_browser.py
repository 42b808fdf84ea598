"""The desk's health banner in a real browser (Debian's Chromium driven by Playwright): it appears,
without a reload, while /readyz names a part that is not up, says in the desk's language what that
means for the duty officer, and goes away when every part is back.

The Modbus bus is the real thing: a poller against a simulator that is stopped and started again.
The other parts' lines come from a stand-in reporter set by the test: what is under test here is
the desk's words for each kind of part; each reporter's own states are tested beside its part.
Screenshots (desk and phone, Chinese and English) are kept in test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from playwright.async_api import Browser, Page, expect

from facility.netutil import free_port
from facility.readiness import Figure, PartState, State
from gateway.modbus.poller import DEMOTED_MAX_S
from simulators.host import SimulatorHost
from tests.api.health_app import TOKEN, Heard, health_app, pollers_of, pump, running
from tests.api.test_desk_browser import ARTIFACTS, DESK, PHONE
from tests.simulators.conftest import simulated, until

POLL_MS = 15_000  # the desk reads /readyz every 5 s
BACK_MS = int((DEMOTED_MAX_S + 10) * 1000)  # a device that stopped answering is retried at a growing interval


class Parts:
    """A stand-in reporter for the stores and the broker, in whatever state the test sets."""

    def __init__(self) -> None:
        self.down: set[str] = set()
        self.since = time.time_ns()  # each last worked when the test began

    def parts(self) -> list[PartState]:
        kinds = {"ops_store": "ops store", "telemetry_store": "telemetry store", "broker": "broker 127.0.0.1:1883"}
        return [
            PartState(name, kind, State.DOWN if kind in self.down else State.UP, self.since, "connection refused")
            for kind, name in kinds.items()
        ]

    def figures(self) -> list[Figure]:
        return []


async def log_in(page: Page, url: str) -> None:
    await page.goto(url + "/")
    await page.fill("#token", TOKEN)
    await page.click("#login-form button[type=submit]")
    await expect(page.locator("#link")).to_have_class("link live", timeout=10_000)


async def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS / f"desk-health-{name}.png")


async def test_the_banner_names_each_part_not_up_in_the_desk_language_and_goes_when_all_are_back(
    tmp_path: Path, browser: Browser
) -> None:
    port = free_port()
    async with simulated(tmp_path, pump(port)) as (site, host):
        heard, stand_in = Heard(), Parts()
        (poller,) = pollers_of(site, heard)
        async with running(poller.run()), health_app(tmp_path, site, [poller, stand_in]) as app:
            await until(lambda: ("pump-1", True) in heard.status)
            page = await browser.new_page(viewport=DESK, timezone_id="Asia/Shanghai")
            try:
                await log_in(page, app.url)
                banner = page.locator("#health-banner")
                await expect(banner).to_be_hidden(timeout=POLL_MS)
                await expect(page.locator("body")).to_have_attribute("data-health", "ok")

                # The bus loses power: its line appears without a reload.
                await host.stop()
                bus = banner.locator('li[data-kind="modbus_bus"][data-state="down"]')
                await expect(bus).to_have_text(re.compile(rf"^总线 127\.0\.0\.1:{port} 无应答"), timeout=POLL_MS)
                await expect(bus).to_have_attribute("title", re.compile("pump-1"))  # the server's detail, on hover
                await expect(bus.locator(".age")).to_have_text(re.compile(r"^（最后正常：\d+ 秒前）$"))

                # The ops store, the telemetry store and the broker go down too.
                stand_in.down = {"ops_store", "telemetry_store", "broker"}
                ops = banner.locator('li[data-kind="ops_store"]')
                await expect(ops).to_contain_text("报警已显示，尚未入库", timeout=POLL_MS)
                telemetry = banner.locator('li[data-kind="telemetry_store"]')
                await expect(telemetry).to_contain_text("遥测库不可用，数据暂存本地")
                await expect(banner.locator('li[data-kind="broker"]')).to_contain_text("消息服务器断开")
                words = (await banner.inner_text()).replace(f"127.0.0.1:{port}", "")
                assert not re.search(r"[A-Za-z]", words), words  # every word Chinese
                await shot(page, "1-zh")

                await page.click("#lang")
                await expect(ops).to_contain_text("Alarms are shown but not yet recorded")
                await expect(bus).to_contain_text(f"Modbus bus 127.0.0.1:{port} not answering")
                await expect(banner.locator("strong")).to_have_text("Part of the service is not working:")
                await shot(page, "2-en")

                await page.set_viewport_size(PHONE)
                await expect(banner).to_be_in_viewport()
                await shot(page, "3-phone-en")
                await page.click("#lang")
                await expect(ops).to_contain_text("报警已显示，尚未入库")
                await shot(page, "4-phone-zh")

                # Everything comes back: the banner goes, again without a reload.
                stand_in.down = set()
                again = SimulatorHost(site)
                await again.start()
                try:
                    await expect(banner).to_be_hidden(timeout=BACK_MS)
                    await expect(page.locator("body")).to_have_attribute("data-health", "ok")
                finally:
                    await again.stop()
            finally:
                await page.close()  # its event stream ends with it, before the server stops
