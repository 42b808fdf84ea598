"""A fault in the simulated plant reaches the duty desk's event stream, is acknowledged and clears.

Real Mosquitto (the test's own), real pymodbus server and client, real HTTP: nothing is mocked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from facility.netutil import free_port
from testsupport.servers import Mosquitto
from testsupport.system import TOKEN, EventStream, alarm, eventually, running_system, write_site

DEADLINE_S = 30.0  # generous: rule `for` durations plus polling, on a loaded 2-core machine
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def _fault_cycle(tmp_path: Path, broker: Mosquitto, device: str, fault: str, rule: str) -> None:
    site_path = write_site(tmp_path, broker.url, free_port())
    async with running_system(site_path, tmp_path / "data") as (url, _site):
        async with EventStream(url) as events, httpx.AsyncClient(base_url=url, headers=AUTH) as http:
            response = await http.post("/sim/faults", json={"device": device, "fault": fault})
            assert response.status_code == 201, response.text

            raised = await events.wait_for(alarm(rule, "unacknowledged"), DEADLINE_S)
            assert raised.data["device"] == device
            alarm_id = raised.data["id"]

            response = await http.post(f"/api/v1/alarms/{alarm_id}/ack")
            assert response.status_code == 200
            assert response.json()["state"] == "acknowledged"
            assert response.json()["acked_by"] == "duty"
            await events.wait_for(alarm(rule, "acknowledged"), DEADLINE_S)
            listed = {a["id"]: a for a in (await http.get("/api/v1/alarms")).json()["items"]}
            assert listed[alarm_id]["state"] == "acknowledged"

            response = await http.delete(f"/sim/faults/{device}")
            assert response.status_code == 200

            closed = await events.wait_for(alarm(rule, "normal"), DEADLINE_S)
            assert closed.data["id"] == alarm_id
            detail = (await http.get(f"/api/v1/alarms/{alarm_id}")).json()
            assert [h["action"] for h in detail["history"]] == ["raised", "acknowledged", "returned to normal"]
            assert (await http.get("/api/v1/alarms")).json()["items"] == []  # closed alarms leave the live list


async def test_pump_low_pressure_over_modbus_reaches_the_desk(tmp_path: Path, mosquitto: Mosquitto) -> None:
    await _fault_cycle(tmp_path, mosquitto, "pump-1", "low_pressure", "booster-pump-low-pressure")


async def test_elevator_entrapment_over_mqtt_reaches_the_desk(tmp_path: Path, mosquitto: Mosquitto) -> None:
    await _fault_cycle(tmp_path, mosquitto, "lift-1", "entrapment", "elevator-entrapment")


async def test_live_values_carry_quality_and_age(tmp_path: Path, mosquitto: Mosquitto) -> None:
    site_path = write_site(tmp_path, mosquitto.url, free_port())
    async with running_system(site_path, tmp_path / "data") as (url, _site):
        async with httpx.AsyncClient(base_url=url, headers=AUTH) as http:

            async def pump() -> dict[str, Any] | None:
                devices = {d["id"]: d for d in (await http.get("/api/v1/devices")).json()}
                return devices["pump-1"] if devices["pump-1"]["points"]["flow"]["value"] is not None else None

            device = await eventually(pump, 10)
            pressure = device["points"]["outlet_pressure"]
            assert pressure["unit"] == "MPa"
            assert pressure["quality"] == "good"
            assert 0.3 < pressure["value"] < 0.6
            assert pressure["age_s"] >= 0
            flow = device["points"]["flow"]
            assert flow["value"] == round(flow["value"], 1)  # scaled by 0.1, no float noise


async def test_a_device_that_stops_answering_shows_offline_with_its_last_values(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    site_path = write_site(tmp_path, mosquitto.url, free_port())
    async with running_system(site_path, tmp_path / "data") as (url, _site):
        async with httpx.AsyncClient(base_url=url, headers=AUTH) as http:

            async def pump(check: Any) -> dict[str, Any] | None:
                devices = {d["id"]: d for d in (await http.get("/api/v1/devices")).json()}
                return devices["pump-1"] if check(devices["pump-1"]) else None

            before = await eventually(lambda: pump(lambda d: d["online"] and d["last_seen"]), 10)
            await http.post("/sim/faults", json={"device": "pump-1", "fault": "comm_loss"})
            after = await eventually(lambda: pump(lambda d: d["online"] is False), 15)
            pressure = after["points"]["outlet_pressure"]
            assert pressure["quality"] == "no_comm"
            assert pressure["value"] is not None  # the last known value, marked as such
            assert after["last_seen"] >= before["last_seen"]
