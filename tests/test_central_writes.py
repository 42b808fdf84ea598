"""A point written from the centre's desk, carried to the estate's gateway in another process and
answered (gateway.remote_writes): three `facility` processes on one broker, as a centre runs them.

- the simulators (`facility sim run`), the estate's plant on Modbus;
- the estate's gateway (`facility run --parts gateway`), which sends its readings up and takes the
  centre's writes;
- the centre (`facility run --parts rules,api`), whose copy of the site file allow-lists one point
  more than the estate's: the estate's allow-list is the one that holds.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from facility.netutil import free_port
from facility.records import AuditEntry
from testsupport.ops_db import folder_ops
from testsupport.processes import TOKEN, start_facility, stop_facility
from testsupport.servers import Mosquitto, http_json, wait_listening
from testsupport.system import write_site

WRITES = """writes:
  - {device: pump-1, point: pressure_setpoint, min: 0.3, max: 0.6}
"""
CENTRE_ONLY = "  - {device: pump-1, point: frequency, min: 0, max: 50}\n"  # the estate does not allow it


def audit(folder: Path) -> list[AuditEntry]:
    """The device writes in a process's audit log (its SQLite ops store), oldest first."""

    async def read() -> list[AuditEntry]:
        store = folder_ops(folder / "var", folder / "site.yaml")
        try:
            return [e for e in reversed(await store.audit.entries(100)) if e.action == "write"]
        finally:
            await store.close()

    return asyncio.run(read())


def write(port: int, point: str, value: Any) -> httpx.Response:
    url = f"http://127.0.0.1:{port}/api/v1/devices/pump-1/points/{point}/write"
    return httpx.post(url, json={"value": value}, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)


def test_a_central_write_is_carried_to_the_estate_and_checked_there(tmp_path: Path, mosquitto: Mosquitto) -> None:
    estate, centre = tmp_path / "estate", tmp_path / "centre"
    estate.mkdir()
    site = write_site(estate, mosquitto.url, free_port(), extra=WRITES)
    centre.mkdir()
    (centre / "site.yaml").write_text(site.read_text() + CENTRE_ONLY)
    sim_port, estate_port, centre_port = free_port(), free_port(), free_port()
    token = {"FACILITY_TOKEN": TOKEN}
    procs = {"sims": start_facility(["sim", "run", str(site), "--port", str(sim_port)], estate, token)}
    try:
        wait_listening(sim_port, timeout=60, proc=procs["sims"])
        args = ["run", "-c", "site.yaml", "--port"]
        procs["estate"] = start_facility([*args, str(estate_port), "--parts", "gateway"], estate, token)
        procs["centre"] = start_facility([*args, str(centre_port), "--parts", "rules,api"], centre, token)
        wait_listening(estate_port, timeout=60, proc=procs["estate"])
        wait_listening(centre_port, timeout=60, proc=procs["centre"])

        done = write(centre_port, "pressure_setpoint", 0.45)
        assert done.status_code == 200, done.text
        assert done.json() == {"device": "pump-1", "point": "pressure_setpoint", "value": 0.45}
        plant = http_json(f"http://127.0.0.1:{sim_port}/sim/devices", token=TOKEN)
        assert next(d["values"] for d in plant if d["id"] == "pump-1")["pressure_setpoint"] == 0.45

        refused = write(centre_port, "frequency", 40)  # allowed by the centre's file, not the estate's
        assert refused.status_code == 403 and "allow-list" in refused.json()["detail"], refused.text
        out_of_range = write(centre_port, "pressure_setpoint", 0.7)
        assert out_of_range.status_code == 422, out_of_range.text
        (error,) = out_of_range.json()["detail"]
        assert error["loc"] == ["body", "value"] and "outside the allowed range 0.3..0.6" in error["msg"]

        code, output = stop_facility(procs.pop("estate"))
        assert code == 0, output
        unanswered = write(centre_port, "pressure_setpoint", 0.5)
        assert unanswered.status_code == 502, unanswered.text
        assert "did not answer within" in unanswered.json()["detail"]
    finally:
        for proc in procs.values():
            stop_facility(proc)

    outcomes = [(e.target, e.detail.get("value"), e.outcome) for e in audit(centre)]
    assert outcomes == [
        ("pump-1/pressure_setpoint", 0.45, "ok"),
        ("pump-1/frequency", 40, "refused"),
        ("pump-1/pressure_setpoint", 0.7, "refused"),
        ("pump-1/pressure_setpoint", 0.5, "failed"),
    ]
    at_estate = audit(estate)  # the estate's own record, naming the centre's user
    assert [(e.target, e.outcome) for e in at_estate] == [
        ("pump-1/pressure_setpoint", "ok"),
        ("pump-1/frequency", "refused"),
        ("pump-1/pressure_setpoint", "refused"),
    ]
    assert all(e.actor == "operator" and e.source.startswith("centre ") for e in at_estate), at_estate
