"""Writing points through the API of the whole running system: the write reaches the simulated
device over Modbus, every attempt is audited with the user and the client address, and refusals
get the status that says why (401, 403, 404, 422 naming the field, 502)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from facility.netutil import free_port
from facility.records import AuditEntry
from facility.site import Site
from facility.store.ops import OpsStore
from tests.simulators.conftest import read_modbus
from testsupport.servers import Mosquitto
from testsupport.system import TOKEN, running_system, write_site

HEADERS = {"Authorization": f"Bearer {TOKEN}"}


def site_with_writes(tmp_path: Path, broker_url: str) -> Path:
    """The test estate plus a second pump and a lighting panel on pump-1's Modbus gateway, and an
    allow-list: pump-1's setpoint within 0.3-0.6 MPa, pump-2's within what its drive refuses above
    1 MPa, and lighting circuit 1."""
    port = free_port()
    extra = f"""\
  - id: pump-2
    profile: booster_pump
    modbus: {{host: 127.0.0.1, port: {port}, unit: 2, interval: 200ms, timeout: 500ms}}
  - id: lights-1
    profile: lighting_panel
    modbus: {{host: 127.0.0.1, port: {port}, unit: 3, interval: 200ms, timeout: 500ms}}
writes:
  - {{device: pump-1, point: pressure_setpoint, min: 0.3, max: 0.6}}
  - {{device: pump-2, point: pressure_setpoint, min: 0.3, max: 1.5}}
  - {{device: lights-1, point: circuit_1_command, values: [true, false]}}
"""
    return write_site(tmp_path, broker_url, port, extra=extra)


async def audit_log(data_dir: Path, site: Site, action: str = "write", limit: int = 100) -> list[AuditEntry]:
    """The running system's audit entries of one action, oldest first, read from its ops store."""
    store = OpsStore(f"sqlite+aiosqlite:///{data_dir / 'ops.db'}", site=site.site.id)
    try:
        return [e for e in reversed(await store.audit.entries(limit)) if e.action == action]
    finally:
        await store.close()


def path(device: str, point: str) -> str:
    return f"/api/v1/devices/{device}/points/{point}/write"


async def sim_values(http: httpx.AsyncClient, device: str) -> dict[str, Any]:
    """What the simulator's model holds now (its control API), to compare with the wire."""
    devices = (await http.get("/sim/devices")).json()
    return next(d["values"] for d in devices if d["id"] == device)


async def test_writes_reach_the_devices_and_are_audited(tmp_path: Path, mosquitto: Mosquitto) -> None:
    data = tmp_path / "data"
    async with running_system(site_with_writes(tmp_path, mosquitto.url), data) as (url, site):
        async with httpx.AsyncClient(base_url=url, headers=HEADERS) as http:
            written = await http.post(path("pump-1", "pressure_setpoint"), json={"value": 0.35})
            assert written.status_code == 200, written.text
            assert written.json() == {"device": "pump-1", "point": "pressure_setpoint", "value": 0.35}
            assert (await read_modbus(site, "pump-1"))["pressure_setpoint"] == 0.35
            assert (await sim_values(http, "pump-1"))["pressure_setpoint"] == 0.35
            assert (await sim_values(http, "pump-2"))["pressure_setpoint"] == 0.45  # the other drive keeps its own

            # A lighting circuit, off then on whatever the photocell says at this time of day.
            for on in (False, True):
                switched = await http.post(path("lights-1", "circuit_1_command"), json={"value": on})
                assert switched.status_code == 200 and switched.json()["value"] is on, switched.text
                panel: dict[str, Any] = await read_modbus(site, "lights-1")
                assert panel["circuit_1_command"] is on and panel["circuit_1_on"] is on  # the contactor follows
                assert (panel["circuit_1_current"] > 4.0) is on

        log = await audit_log(data, site)
        assert [(e.target, e.detail, e.outcome) for e in log] == [
            ("pump-1/pressure_setpoint", {"value": 0.35, "confirmed": 0.35}, "ok"),
            ("lights-1/circuit_1_command", {"value": False, "confirmed": False}, "ok"),
            ("lights-1/circuit_1_command", {"value": True, "confirmed": True}, "ok"),
        ]
        assert all((e.actor, e.source, e.action) == ("duty", "127.0.0.1", "write") for e in log)
        # The API's own record of each request, beside the device write's.
        requests = await audit_log(data, site, "POST /devices/{device}/points/{point}/write")
        assert [(e.target, e.detail, e.outcome) for e in requests] == [
            ("/api/v1/devices/pump-1/points/pressure_setpoint/write", {"status": 200}, "ok"),
            ("/api/v1/devices/lights-1/points/circuit_1_command/write", {"status": 200}, "ok"),
            ("/api/v1/devices/lights-1/points/circuit_1_command/write", {"status": 200}, "ok"),
        ]


async def test_refused_writes_say_why_and_are_audited(tmp_path: Path, mosquitto: Mosquitto) -> None:
    data = tmp_path / "data"
    async with running_system(site_with_writes(tmp_path, mosquitto.url), data) as (url, site):
        async with httpx.AsyncClient(base_url=url) as anonymous:
            missing = await anonymous.post(path("pump-1", "pressure_setpoint"), json={"value": 0.4})
            assert missing.status_code == 401
            wrong = await anonymous.post(
                path("pump-1", "pressure_setpoint"), json={"value": 0.4}, headers={"Authorization": "Bearer nope"}
            )
            assert wrong.status_code == 401

        async with httpx.AsyncClient(base_url=url, headers=HEADERS, timeout=10) as http:
            not_listed = await http.post(path("pump-1", "frequency"), json={"value": 40})
            assert not_listed.status_code == 403 and "allow-list" in not_listed.json()["detail"]

            for value, words in [(0.7, "outside the allowed range 0.3..0.6 MPa"), ("high", "takes a number")]:
                bad = await http.post(path("pump-1", "pressure_setpoint"), json={"value": value})
                assert bad.status_code == 422, bad.text
                (error,) = bad.json()["detail"]
                assert error["loc"] == ["body", "value"] and words in error["msg"], error
            not_allowed_value = await http.post(path("lights-1", "circuit_1_command"), json={"value": 1})
            assert not_allowed_value.status_code == 422
            assert not_allowed_value.json()["detail"][0]["loc"] == ["body", "value"]

            # Requests that are malformed never become an attempt: FastAPI names the field.
            extra = await http.post(path("pump-1", "pressure_setpoint"), json={"value": 0.4, "force": True})
            assert extra.status_code == 422 and extra.json()["detail"][0]["loc"] == ["body", "force"]
            empty = await http.post(path("pump-1", "pressure_setpoint"), json={})
            assert empty.status_code == 422 and empty.json()["detail"][0]["loc"] == ["body", "value"]

            unknown_device = await http.post(path("pump-9", "pressure_setpoint"), json={"value": 0.4})
            assert unknown_device.status_code == 404 and "pump-9" in unknown_device.json()["detail"]
            unknown_point = await http.post(path("pump-1", "setpoint"), json={"value": 0.4})
            assert unknown_point.status_code == 404 and "setpoint" in unknown_point.json()["detail"]

            refused = await http.post(
                path("pump-2", "pressure_setpoint"), json={"value": 1.2}
            )  # above the drive's 1 MPa
            assert refused.status_code == 502 and "exception 0x03" in refused.json()["detail"]

            injected = await http.post("/sim/faults", json={"device": "pump-1", "fault": "comm_loss"})
            assert injected.status_code == 201
            silent = await http.post(path("pump-1", "pressure_setpoint"), json={"value": 0.4})
            assert silent.status_code == 502 and "did not answer" in silent.json()["detail"]
            assert (await http.delete("/sim/faults/pump-1")).status_code == 200

            assert (await sim_values(http, "pump-1"))["pressure_setpoint"] == 0.45  # nothing was written
            assert (await sim_values(http, "pump-2"))["pressure_setpoint"] == 0.45

        log = await audit_log(data, site)
        assert [(e.target, e.detail["value"], e.outcome, e.detail["reason"]) for e in log] == [
            ("pump-1/frequency", 40, "refused", "NotAllowed"),
            ("pump-1/pressure_setpoint", 0.7, "refused", "BadValue"),
            ("pump-1/pressure_setpoint", "high", "refused", "BadValue"),
            ("lights-1/circuit_1_command", 1, "refused", "BadValue"),
            ("pump-9/pressure_setpoint", 0.4, "refused", "UnknownTarget"),
            ("pump-1/setpoint", 0.4, "refused", "UnknownTarget"),
            ("pump-2/pressure_setpoint", 1.2, "failed", "DeviceRefused"),
            ("pump-1/pressure_setpoint", 0.4, "failed", "DeviceOffline"),
        ]
        assert log[6].detail["exception_code"] == 3
        assert all((e.actor, e.source) == ("duty", "127.0.0.1") for e in log)
