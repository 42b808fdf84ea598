"""The power-meter simulator, read over Modbus TCP as the gateway reads it."""

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
PHASES = ("a", "b", "c")


@pytest.fixture
async def meter(tmp_path: Path) -> AsyncIterator[Running]:
    devices = f"  - {{id: meter-1, profile: power_meter, modbus: {{host: 127.0.0.1, port: {free_port()}, unit: 1}}}}\n"
    async with simulated(tmp_path, devices) as running:
        yield running


async def read(site: Site) -> Reading:
    return await read_modbus(site, "meter-1")


def volts(v: Reading) -> list[float]:
    return [v[f"voltage_{p}"] for p in PHASES]


def on_mains(v: Reading) -> bool:
    return all(228 <= x <= 232 for x in volts(v)) and v["mains_present"] is True and v["ats_position"] == "mains"


async def test_normal_supply_is_plausible_and_consistent(meter: Running) -> None:
    site, _ = meter
    v = await read(site)
    assert on_mains(v), v
    assert v["generator_running"] is False
    assert 49.9 <= v["frequency"] <= 50.1
    assert 0.85 <= v["power_factor"] <= 1.0
    # The currents (little word order, input registers) and the voltages (big word order, holding
    # registers) decode to the power the meter reports: a swapped word would break this.
    amps = [v[f"current_{p}"] for p in PHASES]
    assert all(50 <= a <= 400 for a in amps), amps
    computed = sum(u * i for u, i in zip(volts(v), amps, strict=True)) * v["power_factor"] / 1000
    assert computed == pytest.approx(v["active_power"], rel=0.01)


async def test_load_follows_the_day(meter: Running) -> None:
    site, host = meter
    host.set_time_of_day(3.0 * 3600)
    night = await read_until(site, "meter-1", lambda v: v["active_power"] < 75)
    host.set_time_of_day(19.5 * 3600)
    evening = await read_until(site, "meter-1", lambda v: v["active_power"] > 150)
    assert evening["current_a"] > 2 * night["current_a"]


async def test_energy_accumulates_with_model_time(meter: Running) -> None:
    site, host = meter
    start = (await read(site))["energy"]
    assert isinstance(start, int)
    host.model("meter-1").speed = 600.0  # ten model minutes a second: tens of kWh a second
    await read_until(site, "meter-1", lambda v: v["energy"] > start + 10)


async def test_mains_failure_dead_bus_then_generator_then_back(meter: Running) -> None:
    site, host = meter
    host.model("meter-1").speed = 2.0  # the generator starts after 10 model seconds: 5 s here
    await host.inject("meter-1", "mains_failure")
    dead = await read(site)
    assert dead["mains_present"] is False
    assert volts(dead) == [0.0, 0.0, 0.0]
    assert dead["active_power"] == 0.0
    assert dead["ats_position"] == "off"
    assert dead["generator_running"] is False
    await read_until(site, "meter-1", lambda v: v["ats_position"] == "generator", timeout=15)
    # Read again: the read that saw the switch may have read the generator's coil, in a request
    # of its own, the moment before it, as a client of a real meter may.
    on_generator = await read(site)
    assert on_generator["ats_position"] == "generator"
    assert on_generator["generator_running"] is True
    assert on_generator["mains_present"] is False
    assert all(225 <= x <= 235 for x in volts(on_generator)), on_generator
    assert on_generator["active_power"] > 0
    await host.clear("meter-1")
    await read_until(site, "meter-1", on_mains)
    back = await read(site)  # again, for the same reason
    assert back["ats_position"] == "mains" and back["generator_running"] is False


@pytest.mark.parametrize(("params", "lost"), [(None, "b"), ({"phase": "a"}, "a"), ({"phase": "c"}, "c")])
async def test_phase_loss(meter: Running, params: dict[str, str] | None, lost: str) -> None:
    site, host = meter
    await host.inject("meter-1", "phase_loss", params)
    v = await read_until(site, "meter-1", lambda v: v[f"voltage_{lost}"] == 0.0)
    assert v[f"current_{lost}"] == 0.0
    for p in set(PHASES) - {lost}:
        assert 228 <= v[f"voltage_{p}"] <= 232
        assert v[f"current_{p}"] > 0
    assert v["mains_present"] is True
    await host.clear("meter-1")
    await read_until(site, "meter-1", lambda v: on_mains(v) and v[f"current_{lost}"] > 0)


async def test_over_voltage(meter: Running) -> None:
    site, host = meter
    await host.inject("meter-1", "over_voltage")
    await read_until(site, "meter-1", lambda v: all(250 <= x <= 260 for x in volts(v)))
    await host.clear("meter-1")
    await read_until(site, "meter-1", on_mains)


async def test_flapping_crosses_the_threshold_both_ways(meter: Running) -> None:
    site, host = meter
    await host.inject("meter-1", "flapping")
    await read_until(site, "meter-1", lambda v: v["voltage_a"] == 185.0)
    await read_until(site, "meter-1", lambda v: v["voltage_a"] == 230.0)
    await read_until(site, "meter-1", lambda v: v["voltage_a"] == 185.0)
    await host.clear("meter-1")
    # Flapping writes exactly 230.0 or 185.0; a measured voltage is neither.
    await read_until(site, "meter-1", lambda v: v["voltage_a"] not in (230.0, 185.0) and on_mains(v))


@pytest.mark.parametrize(
    ("fault", "params"),
    [
        ("phase_loss", {"phase": "d"}),
        ("phase_loss", {"phase": 2}),
        ("phase_loss", {"phase": "a", "duration": 5}),
        ("over_voltage", {"volts": 270}),
        ("mains_failure", {"phase": "a"}),
        ("brownout", None),
    ],
)
async def test_bad_faults_are_refused(meter: Running, fault: str, params: dict[str, object] | None) -> None:
    site, host = meter
    with pytest.raises(FaultError):
        await host.inject("meter-1", fault, params)
    assert host.model("meter-1").faults == {}
    assert on_mains(await read(site))
