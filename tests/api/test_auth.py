"""Every route but /healthz needs a valid bearer token; the desk page itself is public."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from facility.netutil import free_port
from tests.api.conftest import MANY_PROBES
from testsupport.servers import Mosquitto
from testsupport.system import TOKEN, running_system, write_site

GUARDED = [
    ("GET", "/api/v1/site"),
    ("GET", "/api/v1/devices"),
    ("GET", "/api/v1/alarms"),
    ("GET", "/api/v1/alarms/1"),
    ("POST", "/api/v1/alarms/1/ack"),
    ("GET", "/api/v1/stream"),
    ("GET", "/sim/devices"),
    ("POST", "/sim/faults"),
    ("DELETE", "/sim/faults/pump-1"),
]


async def test_tokens_are_required_and_checked(tmp_path: Path, mosquitto: Mosquitto) -> None:
    site_path = write_site(tmp_path, mosquitto.url, free_port(), extra=MANY_PROBES)
    async with running_system(site_path, tmp_path / "data") as (url, _site), httpx.AsyncClient(base_url=url) as http:
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/")).status_code == 200  # the login page
        for method, path in GUARDED:
            missing = await http.request(method, path)
            assert missing.status_code == 401, (method, path)
            assert missing.headers["www-authenticate"] == "Bearer"
            wrong = await http.request(method, path, headers={"Authorization": "Bearer not-the-token"})
            assert wrong.status_code == 401, (method, path)
            basic = await http.request(method, path, headers={"Authorization": f"Basic {TOKEN}"})
            assert basic.status_code == 401, (method, path)
        good = await http.get("/api/v1/alarms", headers={"Authorization": f"Bearer {TOKEN}"})
        assert good.status_code == 200


async def test_bad_requests_get_4xx_naming_the_problem(tmp_path: Path, mosquitto: Mosquitto) -> None:
    site_path = write_site(tmp_path, mosquitto.url, free_port())
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with running_system(site_path, tmp_path / "data") as (url, _site):
        async with httpx.AsyncClient(base_url=url, headers=headers) as http:
            assert (await http.post("/api/v1/alarms/424242/ack")).status_code == 404
            unknown_device = await http.post("/sim/faults", json={"device": "nope", "fault": "entrapment"})
            assert unknown_device.status_code == 404 and "nope" in unknown_device.text
            unknown_fault = await http.post("/sim/faults", json={"device": "lift-1", "fault": "flood"})
            assert unknown_fault.status_code == 422 and "entrapment" in unknown_fault.text
            extra = await http.post("/sim/faults", json={"device": "lift-1", "fault": "entrapment", "x": 1})
            assert extra.status_code == 422 and "x" in extra.json()["detail"][0]["loc"]
            listed = (await http.get("/sim/devices")).json()
            assert {d["id"] for d in listed} == {"pump-1", "lift-1"}
            assert all(d["faults"] == {} for d in listed)  # the refused requests changed nothing


async def test_tokens_never_reach_the_logs(
    tmp_path: Path, mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    """Whatever a client sends, right or wrong, and whatever the system logs meanwhile (down to
    DEBUG), no token is written in the log."""
    caplog.set_level(logging.DEBUG)
    site_path = write_site(tmp_path, mosquitto.url, free_port())
    wrong = "wrong-token-abcdef0123456789"
    async with running_system(site_path, tmp_path / "data") as (url, _site), httpx.AsyncClient(base_url=url) as http:
        for token in (TOKEN, wrong):
            headers = {"Authorization": f"Bearer {token}"}
            await http.get("/api/v1/alarms", headers=headers)
            await http.post("/api/v1/alarms/1/ack", headers=headers)
            await http.post("/api/v1/tasks", headers=headers, json={"title": "x", "unknown": token})
            await http.get("/api/v1/stream", headers=headers, params={"last_event_id": "not-a-number"})
    assert caplog.records, "the system logged nothing: the check would prove nothing"
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert TOKEN not in logged and wrong not in logged
