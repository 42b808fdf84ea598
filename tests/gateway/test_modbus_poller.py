"""The Modbus poller against the simulators: dead, slow and garbled devices on a shared bus, a
profile that does not match its device, and a bus that drops and comes back."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from facility.aio import cancel_all
from facility.model import Quality, Reading
from facility.netutil import free_port
from facility.site import Site, load_site
from gateway.modbus.poller import DEMOTED_MAX_S, BusPoller
from simulators.host import SimulatorHost
from tests.simulators.conftest import simulated, until

INTERVAL, TIMEOUT = 0.2, 0.4


def pumps(port: int, units: int = 3) -> str:
    return "".join(
        f"  - {{id: pump-{u}, profile: booster_pump, modbus: {{port: {port}, unit: {u}, "
        f"interval: {INTERVAL}, timeout: {TIMEOUT}}}}}\n"
        for u in range(1, units + 1)
    )


class Recorder:
    def __init__(self) -> None:
        self.readings: list[Reading] = []
        self.status: list[tuple[str, bool]] = []
        self.dead: list[tuple[str, str, str]] = []

    def publish(self, readings: list[Reading]) -> None:
        self.readings.extend(readings)

    def on_status(self, device: str, online: bool) -> None:
        self.status.append((device, online))

    def dead_letter(self, source: str, key: str, reason: str, _payload: Any) -> None:
        self.dead.append((source, key, reason))

    def polls(self, point: str = "outlet_pressure", quality: Quality = Quality.GOOD) -> Counter[str]:
        return Counter(r.device for r in self.readings if r.point == point and r.quality is quality)


@asynccontextmanager
async def polling(site: Site) -> AsyncIterator[tuple[BusPoller, Recorder]]:
    recorder = Recorder()
    devices = [(d, site.profile_of(d)) for d in site.devices]
    first = site.devices[0].modbus
    assert first is not None
    poller = BusPoller(first, devices, recorder.publish, recorder.on_status, recorder.dead_letter)
    task = asyncio.create_task(poller.run())
    try:
        yield poller, recorder
    finally:
        await cancel_all([task])


async def _rates_while(recorder: Recorder, seconds: float) -> Counter[str]:
    before = recorder.polls()
    await asyncio.sleep(seconds)  # a measurement window: counting polls, not waiting for an event
    after = recorder.polls()
    return after - before


async def test_a_dead_device_does_not_slow_the_others(tmp_path: Path) -> None:
    async with simulated(tmp_path, pumps(free_port())) as (site, host), polling(site) as (_poller, rec):
        await until(lambda: rec.polls()["pump-3"] >= 3)
        await host.inject("pump-2", "comm_loss")
        await until(lambda: ("pump-2", False) in rec.status)
        no_comm = [r for r in rec.readings if r.device == "pump-2" and r.quality is Quality.NO_COMM]
        assert {r.point for r in no_comm} == set(site.profile_of(site.device("pump-2")).points)
        window = 4.0
        rates = await _rates_while(rec, window)
        nominal = window / INTERVAL
        # Without demotion every cycle would wait out pump-2's timeout: 0.4 s a cycle, half the rate.
        assert rates["pump-1"] >= 0.7 * nominal and rates["pump-3"] >= 0.7 * nominal, rates
        await host.clear("pump-2")
        back = lambda: rec.status[rec.status.index(("pump-2", False)) :].count(("pump-2", True))  # noqa: E731
        await until(back, timeout=DEMOTED_MAX_S + 5)
        assert rec.status.count(("pump-2", False)) == 1  # reported once, not per failed poll


async def test_a_slow_device_goes_offline_and_the_bus_keeps_its_rate(tmp_path: Path) -> None:
    async with simulated(tmp_path, pumps(free_port(), 2)) as (site, host), polling(site) as (_poller, rec):
        await until(lambda: rec.polls()["pump-2"] >= 2)
        await host.inject("pump-1", "slow")
        await until(lambda: ("pump-1", False) in rec.status)
        rates = await _rates_while(rec, 3.0)
        assert rates["pump-2"] >= 0.7 * 3.0 / INTERVAL, rates


async def test_a_busy_device_is_retried_and_stays_online(tmp_path: Path) -> None:
    """Exception 06 means "ask again shortly", not "gone": every other request refused busy must
    cost a retry, never a missed poll or an offline flag."""
    async with simulated(tmp_path, pumps(free_port(), 1)) as (site, host), polling(site) as (poller, rec):
        await until(lambda: rec.polls()["pump-1"] >= 2)
        await host.inject("pump-1", "busy")
        polls, requests = rec.polls()["pump-1"], poller.requests
        await until(lambda: rec.polls()["pump-1"] >= polls + 5)
        reads = rec.polls()["pump-1"] - polls
        # Every read is one block here; each needed a second request after the refusal.
        assert poller.requests - requests >= 2 * reads - 1
        assert ("pump-1", False) not in rec.status
        assert not rec.dead


async def test_garbage_registers_are_bad_values_never_a_crash(tmp_path: Path) -> None:
    async with simulated(tmp_path, pumps(free_port(), 1)) as (site, host), polling(site) as (_poller, rec):
        await until(lambda: rec.polls()["pump-1"] >= 1)
        await host.inject("pump-1", "garbage")
        # Random words: the enum of drive fault codes has six values, so most words are unknown codes.
        await until(lambda: any(r.point == "fault_code" and r.quality is Quality.BAD for r in rec.readings))
        await host.clear("pump-1")
        count = rec.polls()["pump-1"]
        await until(lambda: rec.polls()["pump-1"] > count + 2)
        latest = {r.point: r for r in rec.readings if r.device == "pump-1"}
        assert latest["pressure_setpoint"].value == 0.45 and latest["fault_code"].value == "none"


async def test_a_point_the_device_refuses_is_reported_and_the_rest_read(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "profiles").mkdir()
    booster = (Path(__file__).parents[2] / "facility/profiles/booster_pump.yaml").read_text()
    (tmp_path / "profiles/pump_v2.yaml").write_text(
        booster + "  firmware_version:\n    modbus: {table: holding, address: 40, type: uint16}\n"
    )
    gateway_site = tmp_path / "gateway.yaml"
    gateway_site.write_text(
        f"site: {{id: g}}\nprofiles: [profiles/]\ndevices:\n"
        f"  - {{id: pump-1, profile: pump_v2, modbus: {{port: {port}, interval: {INTERVAL}, timeout: {TIMEOUT}}}}}\n"
    )
    sim_dir = tmp_path / "sim"
    sim_dir.mkdir()
    async with simulated(sim_dir, pumps(port, 1)), polling(load_site(gateway_site)) as (_poller, rec):
        await until(lambda: rec.dead)
        (source, key, reason) = rec.dead[0]
        assert (source, key) == ("modbus", "pump-1/firmware_version")
        assert "holding 40" in reason and "0x02" in reason
        await until(lambda: rec.polls()["pump-1"] >= 3)  # the rest of the device is still read
        assert len(rec.dead) == 1  # reported once
        assert ("pump-1", False) not in rec.status


async def test_the_poller_reconnects_when_the_bus_comes_back(tmp_path: Path) -> None:
    port = free_port()
    async with simulated(tmp_path, pumps(port, 1)) as (site, host), polling(site) as (_poller, rec):
        await until(lambda: rec.polls()["pump-1"] >= 1)
        await host.stop()  # the TCP gateway loses power
        await until(lambda: ("pump-1", False) in rec.status)
        again = SimulatorHost(site)
        await again.start()
        try:
            await until(lambda: ("pump-1", True) in rec.status[1:], timeout=DEMOTED_MAX_S + 5)
            count = rec.polls()["pump-1"]
            await until(lambda: rec.polls()["pump-1"] > count)
        finally:
            await again.stop()
