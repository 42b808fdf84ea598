"""The public-lighting simulator, read over Modbus TCP as the gateway reads it.

The photocell follows the time of day, so each test sets the simulators' clock first.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from facility.netutil import free_port
from facility.site import Site
from simulators.host import SimulatorHost
from simulators.models.base import FaultError
from tests.simulators.conftest import read_modbus, read_until, simulated

Running = tuple[Site, SimulatorHost]
Reading = dict[str, Any]  # point -> decoded value, typed loosely so that checks read plainly
CIRCUITS = range(1, 5)
NOON, NIGHT = 12.0, 22.0
DUSK = 17.85  # about 90 lx: between the switch-on (50 lx) and switch-off (100 lx) levels


@pytest.fixture
async def panel(tmp_path: Path) -> AsyncIterator[Running]:
    devices = (
        f"  - {{id: lights-1, profile: lighting_panel, modbus: {{host: 127.0.0.1, port: {free_port()}, unit: 1}}}}\n"
    )
    async with simulated(tmp_path, devices) as running:
        yield running


async def read(site: Site) -> Reading:
    return await read_modbus(site, "lights-1")


def all_lit(v: Reading) -> bool:
    """Every circuit commanded on, its contactor closed, and drawing the current of working lamps."""
    return all(
        v[f"circuit_{c}_command"] and v[f"circuit_{c}_on"] and 4.2 <= v[f"circuit_{c}_current"] <= 4.8 for c in CIRCUITS
    )


def all_dark(v: Reading) -> bool:
    """Every circuit commanded off, its contactor open, and no current."""
    return all(
        not v[f"circuit_{c}_command"] and not v[f"circuit_{c}_on"] and v[f"circuit_{c}_current"] == 0.0
        for c in CIRCUITS
    )


def daytime(v: Reading) -> bool:
    return v["lux"] is not None and v["lux"] > 10_000 and all_dark(v)


async def test_lights_follow_the_photocell_with_hysteresis(panel: Running) -> None:
    site, host = panel
    host.set_time_of_day(NOON * 3600)
    await read_until(site, "lights-1", daytime)
    host.set_time_of_day(DUSK * 3600)  # getting darker, but not yet dark enough to switch on
    v = await read_until(site, "lights-1", lambda v: 50 < v["lux"] < 100)
    assert all_dark(v), v
    host.set_time_of_day(NIGHT * 3600)
    v = await read_until(site, "lights-1", all_lit)
    assert v["lux"] < 50
    host.set_time_of_day(DUSK * 3600)  # the same light level in the other direction keeps them on
    v = await read_until(site, "lights-1", lambda v: 50 < v["lux"] < 100)
    assert all_lit(v), v
    host.set_time_of_day(NOON * 3600)
    await read_until(site, "lights-1", daytime)


@pytest.mark.parametrize(("params", "failed"), [(None, 1), ({"circuit": 3}, 3)])
async def test_lamp_failure_shows_as_low_current_when_lit(
    panel: Running, params: dict[str, int] | None, failed: int
) -> None:
    site, host = panel
    host.set_time_of_day(NIGHT * 3600)
    await read_until(site, "lights-1", all_lit)
    await host.inject("lights-1", "lamp_failure", params)
    v = await read_until(site, "lights-1", lambda v: v[f"circuit_{failed}_current"] < 1.0)
    assert 0.2 <= v[f"circuit_{failed}_current"] <= 0.4
    assert v[f"circuit_{failed}_command"] and v[f"circuit_{failed}_on"]  # switched on, yet no light
    for c in set(CIRCUITS) - {failed}:
        assert 4.2 <= v[f"circuit_{c}_current"] <= 4.8
    await host.clear("lights-1")
    await read_until(site, "lights-1", all_lit)


async def test_lights_on_in_daytime(panel: Running) -> None:
    site, host = panel
    host.set_time_of_day(NOON * 3600)
    await read_until(site, "lights-1", daytime)
    await host.inject("lights-1", "lights_on_daytime")
    v = await read_until(site, "lights-1", all_lit)
    assert v["lux"] > 10_000  # broad daylight, lights burning
    await host.clear("lights-1")
    await read_until(site, "lights-1", daytime)


async def test_photocell_failure_fails_safe_to_lights_on(panel: Running) -> None:
    site, host = panel
    host.set_time_of_day(NOON * 3600)
    await read_until(site, "lights-1", daytime)
    await host.inject("lights-1", "photocell_failure")
    v = await read_until(site, "lights-1", lambda v: v["lux"] is None)  # the sentinel: "not available"
    assert all_lit(v), v
    await host.clear("lights-1")
    await read_until(site, "lights-1", daytime)


async def test_flapping_lux(panel: Running) -> None:
    site, host = panel
    host.set_time_of_day(NOON * 3600)  # real daylight is far from both flapping values
    await read_until(site, "lights-1", daytime)
    await host.inject("lights-1", "flapping")
    await read_until(site, "lights-1", lambda v: v["lux"] == 150)
    await read_until(site, "lights-1", lambda v: v["lux"] == 30)
    await read_until(site, "lights-1", lambda v: v["lux"] == 150)
    await host.clear("lights-1")
    await read_until(site, "lights-1", daytime)


@pytest.mark.parametrize(
    ("fault", "params"),
    [
        ("lamp_failure", {"circuit": 0}),
        ("lamp_failure", {"circuit": 5}),
        ("lamp_failure", {"circuit": "2"}),
        ("lamp_failure", {"circuit": True}),
        ("lamp_failure", {"circuit": 1, "lamps": 3}),
        ("lights_on_daytime", {"circuit": 1}),
        ("photocell_failure", {"lux": 0}),
        ("blackout", None),
    ],
)
async def test_bad_faults_are_refused(panel: Running, fault: str, params: dict[str, object] | None) -> None:
    site, host = panel
    with pytest.raises(FaultError):
        await host.inject("lights-1", fault, params)
    assert host.model("lights-1").faults == {}
    host.set_time_of_day(NOON * 3600)
    await read_until(site, "lights-1", daytime)
