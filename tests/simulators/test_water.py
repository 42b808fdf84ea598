"""Booster pumps, roof tanks and sump pits, read over Modbus as the gateway reads them."""

from __future__ import annotations

from pathlib import Path

import pytest

from facility.netutil import free_port
from simulators.models import FaultError
from tests.simulators.conftest import read_modbus, read_until, simulated


def pump(port: int) -> str:
    return f"  - {{id: pump-1, profile: booster_pump, modbus: {{port: {port}, unit: 1}}}}\n"


async def test_pump_holds_pressure_and_reports_its_drive(tmp_path: Path) -> None:
    async with simulated(tmp_path, pump(free_port())) as (site, _host):
        v = await read_modbus(site, "pump-1")
        assert 0.43 < v["outlet_pressure"] < 0.47  # type: ignore[operator]
        assert v["running"] is True and v["tripped"] is False and v["fault_code"] == "none"
        assert 28 <= v["frequency"] <= 50  # type: ignore[operator]
        assert v["run_hours"] > 1000 and v["flow"] is not None  # type: ignore[operator]
        assert 0 < v["vibration"] < 3  # type: ignore[operator]


async def test_pump_faults_show_on_the_wire_and_clear(tmp_path: Path) -> None:
    async with simulated(tmp_path, pump(free_port())) as (site, host):
        read = lambda: read_modbus(site, "pump-1")  # noqa: E731

        await host.inject("pump-1", "low_pressure")
        await read_until(
            site, "pump-1", lambda v: v["outlet_pressure"] < 0.25 and v["running"] and v["frequency"] == 50
        )
        await host.clear("pump-1")
        await read_until(site, "pump-1", lambda v: v["outlet_pressure"] > 0.4)

        await host.inject("pump-1", "overload_trip")
        v = await read()
        assert v["tripped"] is True and v["running"] is False and v["fault_code"] == "overcurrent"
        await host.clear("pump-1")

        await host.inject("pump-1", "dry_run")
        v = await read()
        assert v["inlet_pressure"] == 0 and v["running"] is True  # still spinning, in air
        await read_until(site, "pump-1", lambda v: v["fault_code"] == "dry_run" and v["tripped"], 15)
        await host.clear("pump-1")

        await host.inject("pump-1", "flow_meter_fault")
        assert (await read())["flow"] is None  # the sentinel 65535 decodes as "not available"
        await host.clear("pump-1", "flow_meter_fault")
        assert (await read())["flow"] is not None


async def test_bearing_wear_raises_vibration_over_model_time(tmp_path: Path) -> None:
    async with simulated(tmp_path, pump(free_port())) as (site, host):
        before = (await read_modbus(site, "pump-1"))["vibration"]
        host.model("pump-1").speed = 86400.0  # a day per second
        await host.inject("pump-1", "vibration_rising")
        await read_until(site, "pump-1", lambda v: v["vibration"] > before + 2.5)


async def test_tank_overflows_and_empties(tmp_path: Path) -> None:
    port = free_port()
    devices = f"  - {{id: tank-1, profile: water_tank, modbus: {{port: {port}}}}}\n"
    async with simulated(tmp_path, devices) as (site, host):
        read = lambda: read_modbus(site, "tank-1")  # noqa: E731
        v = await read()
        assert 2.0 < v["level"] < 4.8 and v["high_level"] is False and v["low_level"] is False  # type: ignore[operator]
        host.model("tank-1").speed = 200.0
        await host.inject("tank-1", "overflow")
        await read_until(site, "tank-1", lambda v: v["high_level"] and v["inlet_valve_open"])
        await host.clear("tank-1")
        host.model("tank-1").speed = 5000.0  # draining takes hours at night-time demand
        await host.inject("tank-1", "empty")
        await read_until(site, "tank-1", lambda v: v["low_level"] and v["level"] <= 0.5, 20)
        await host.inject("tank-1", "level_sensor_fault")
        assert (await read())["level"] is None


async def test_sump_storm_and_pump_failure_flood_the_pit(tmp_path: Path) -> None:
    port = free_port()
    devices = f"  - {{id: sump-1, profile: sump_pit, modbus: {{port: {port}}}}}\n"
    async with simulated(tmp_path, devices) as (site, host):
        read = lambda: read_modbus(site, "sump-1")  # noqa: E731
        first = await read()
        assert first["high_float"] is False and first["pump_1_fault"] is False
        host.model("sump-1").speed = 100.0
        await host.inject("sump-1", "inflow_surge")
        v = await read_until(site, "sump-1", lambda v: v["inflow"] > 40 and v["pump_1_running"], 20)
        assert v["pump_1_starts"] > first["pump_1_starts"]  # type: ignore[operator]
        await host.inject("sump-1", "pump_failure", {"pump": 2})
        flooded = lambda v: v["pump_2_fault"] and v["high_float"] and not v["pump_2_running"]  # noqa: E731
        await read_until(site, "sump-1", flooded, 30)
        await host.clear("sump-1")
        await read_until(site, "sump-1", lambda v: not v["high_float"], 30)


async def test_pump_failure_takes_only_pump_one_or_two(tmp_path: Path) -> None:
    port = free_port()
    async with simulated(tmp_path, f"  - {{id: sump-1, profile: sump_pit, modbus: {{port: {port}}}}}\n") as (_s, host):
        with pytest.raises(FaultError, match="pump: 1 or 2"):
            await host.inject("sump-1", "pump_failure", {"pump": 3})
        with pytest.raises(FaultError, match="takes no parameters"):
            await host.inject("sump-1", "inflow_surge", {"rate": 2})
        assert host.model("sump-1").faults == {}
