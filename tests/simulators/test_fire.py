"""The fire-panel simulator, read over Modbus TCP as the gateway reads it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from facility.netutil import free_port
from facility.site import Site
from simulators.host import SimulatorHost
from simulators.models.base import FLAP_PERIOD_S, FaultError
from tests.simulators.conftest import read_modbus, read_until, simulated, until

Running = tuple[Site, SimulatorHost]
Reading = dict[str, Any]  # point -> decoded value, typed loosely so that checks read plainly
ZONES = range(1, 9)
STATUS_BITS = ("mains_fail", "battery_fault", "silenced", "general_fire", "general_fault")


@pytest.fixture
async def panel(tmp_path: Path) -> AsyncIterator[Running]:
    devices = f"  - {{id: panel-1, profile: fire_panel, modbus: {{host: 127.0.0.1, port: {free_port()}, unit: 1}}}}\n"
    async with simulated(tmp_path, devices) as running:
        yield running


async def read(site: Site) -> Reading:
    return await read_modbus(site, "panel-1")


def quiet(v: Reading) -> bool:
    """The panel in normal running: zones 1-7 normal, zone 8 isolated, no status bit, battery on float."""
    zones = [v[f"zone_{z}_state"] for z in ZONES]
    return (
        zones == ["normal"] * 7 + ["isolated"]
        and not any(v[b] for b in STATUS_BITS)
        and 27.1 <= v["battery_voltage"] <= 27.3
    )


def only_zone(v: Reading, zone: int, state: str) -> bool:
    """`zone` is in `state` and every other zone is as in normal running."""
    expected = {z: "isolated" if z == 8 else "normal" for z in ZONES} | {zone: state}
    return all(v[f"zone_{z}_state"] == expected[z] for z in ZONES)


async def test_normal_running(panel: Running) -> None:
    site, _ = panel
    v = await read(site)
    assert quiet(v), v
    assert isinstance(v["fire_count"], int) and v["fire_count"] >= 0


@pytest.mark.parametrize(("params", "zone"), [(None, 1), ({"zone": 5}, 5), ({"zone": 8}, 8)])
async def test_fire_in_a_zone_counts_once_and_clears(panel: Running, params: dict[str, int] | None, zone: int) -> None:
    site, host = panel
    count = (await read(site))["fire_count"]
    await host.inject("panel-1", "fire", params)
    v = await read_until(site, "panel-1", lambda v: v["general_fire"] is True)
    assert only_zone(v, zone, "fire"), v
    assert v["fire_count"] == count + 1
    model = host.model("panel-1")
    since = model.elapsed
    await until(lambda: model.elapsed > since + 0.5)  # several model steps later...
    assert (await read(site))["fire_count"] == count + 1  # ...one fire is still one event
    await host.clear("panel-1")
    v = await read_until(site, "panel-1", quiet)
    assert v["fire_count"] == count + 1  # the counter never goes back
    await host.inject("panel-1", "fire", params)
    await read_until(site, "panel-1", lambda v: v["fire_count"] == count + 2)


async def test_fire_spreading_to_another_zone_keeps_both_in_fire_and_is_a_new_event(panel: Running) -> None:
    site, host = panel
    count = (await read(site))["fire_count"]
    await host.inject("panel-1", "fire", {"zone": 2})
    await read_until(site, "panel-1", lambda v: only_zone(v, 2, "fire"))
    await host.inject("panel-1", "fire", {"zone": 4})
    v = await read_until(site, "panel-1", lambda v: v["zone_4_state"] == "fire")
    assert [v[f"zone_{z}_state"] for z in ZONES] == ["normal", "fire", "normal", "fire"] + ["normal"] * 3 + ["isolated"]
    assert v["general_fire"] is True
    assert v["fire_count"] == count + 2
    assert host.model("panel-1").faults["fire"] == {"zones": [2, 4]}
    await host.clear("panel-1", "fire")  # the panel is reset: every zone leaves fire
    await read_until(site, "panel-1", quiet)


@pytest.mark.parametrize(("params", "zone"), [(None, 2), ({"zone": 6}, 6)])
async def test_zone_fault(panel: Running, params: dict[str, int] | None, zone: int) -> None:
    site, host = panel
    await host.inject("panel-1", "zone_fault", params)
    v = await read_until(site, "panel-1", lambda v: v["general_fault"] is True)
    assert only_zone(v, zone, "fault"), v
    assert v["general_fire"] is False
    await host.clear("panel-1")
    await read_until(site, "panel-1", quiet)


async def test_panel_mains_failure_runs_the_battery_down(panel: Running) -> None:
    site, host = panel
    await host.inject("panel-1", "panel_mains_failure")
    v = await read_until(site, "panel-1", lambda v: v["mains_fail"] is True)
    assert v["general_fault"] is True
    assert v["battery_fault"] is False
    host.model("panel-1").speed = 100.0  # the battery runs down over hours; watch it over seconds
    low = await read_until(site, "panel-1", lambda v: v["battery_voltage"] < 26.5)
    lower = await read_until(site, "panel-1", lambda v: v["battery_voltage"] < low["battery_voltage"] - 0.2)
    assert lower["mains_fail"] is True
    await host.clear("panel-1")
    await read_until(site, "panel-1", quiet)  # the charger is back: float voltage again


async def test_battery_fault_reports_no_voltage(panel: Running) -> None:
    site, host = panel
    await host.inject("panel-1", "battery_fault")
    v = await read_until(site, "panel-1", lambda v: v["battery_fault"] is True)
    assert v["battery_voltage"] is None  # the device sent its "not available" sentinel
    assert v["general_fault"] is True
    assert v["mains_fail"] is False
    await host.clear("panel-1")
    await read_until(site, "panel-1", quiet)


async def test_flapping_zone_3(panel: Running) -> None:
    site, host = panel
    await host.inject("panel-1", "flapping")
    await read_until(site, "panel-1", lambda v: only_zone(v, 3, "fire"))
    await read_until(site, "panel-1", lambda v: only_zone(v, 3, "normal"))
    await read_until(site, "panel-1", lambda v: only_zone(v, 3, "fire"))
    await host.clear("panel-1")
    await read_until(site, "panel-1", quiet)
    # The "normal" half of a flap looks quiet too: only quiet for longer than a period shows it stopped.
    loop = asyncio.get_running_loop()
    end = loop.time() + 1.5 * FLAP_PERIOD_S
    while loop.time() < end:
        v = await read(site)
        assert quiet(v), v


@pytest.mark.parametrize(
    ("fault", "params"),
    [
        ("fire", {"zone": 0}),
        ("fire", {"zone": 9}),
        ("fire", {"zone": "3"}),
        ("fire", {"zone": True}),
        ("fire", {"zone": 1, "detector": 4}),
        ("zone_fault", {"zone": -1}),
        ("panel_mains_failure", {"zone": 1}),
        ("battery_fault", {"volts": 0}),
        ("evacuate", None),
    ],
)
async def test_bad_faults_are_refused(panel: Running, fault: str, params: dict[str, object] | None) -> None:
    site, host = panel
    with pytest.raises(FaultError):
        await host.inject("panel-1", fault, params)
    assert host.model("panel-1").faults == {}
    assert quiet(await read(site))
