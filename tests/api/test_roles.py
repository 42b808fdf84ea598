"""Users and roles: `facility users add|list|revoke`, and every action checked against the role of
whoever asks (401 without a valid token, 403 with one whose role is too low, saying what is needed)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from typer.testing import CliRunner

from facility.netutil import free_port
from facility_app.cli import app
from testsupport.servers import Mosquitto
from testsupport.system import running_system, write_site


def users(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["users", *args])
    return result.exit_code, result.stdout, result.stderr


def add(site: Path, data: Path, name: str, role: str) -> str:
    code, out, _ = users("add", name, "--role", role, "--site", str(site), "--data", str(data))
    assert code == 0
    shown, _, token = out.strip().partition(": ")
    assert shown == f"{name} ({role})"
    return token


async def test_each_action_needs_its_role_and_a_revoked_token_stops_working(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    site, data = write_site(tmp_path, mosquitto.url, free_port()), tmp_path / "data"
    # The commands run their own event loop: in a thread, beside this test's.
    tokens = {
        role: await asyncio.to_thread(add, site, data, f"{role}-1", role) for role in ("viewer", "duty", "engineer")
    }
    code, out, _ = await asyncio.to_thread(users, "list", "--site", str(site), "--data", str(data))
    assert code == 0 and [line.split("\t")[:2] for line in out.splitlines()] == [
        ["duty-1", "duty"],
        ["engineer-1", "engineer"],
        ["viewer-1", "viewer"],
    ]
    assert all(token not in out for token in tokens.values())  # shown once, at `add`, never again
    assert not any(token in (data / "ops.db").read_bytes().decode("latin-1") for token in tokens.values())

    async with running_system(site, data) as (url, _site), httpx.AsyncClient(base_url=url) as http:

        async def status(role: str, method: str, path: str, **kw: object) -> int:
            headers = {"Authorization": f"Bearer {tokens[role]}"}
            return (await http.request(method, path, headers=headers, **kw)).status_code  # type: ignore[arg-type]

        assert await status("viewer", "GET", "/api/v1/alarms") == 200
        denied = await http.post("/api/v1/alarms/1/ack", headers={"Authorization": f"Bearer {tokens['viewer']}"})
        assert denied.status_code == 403
        assert denied.json()["detail"] == "this needs the role duty or above; viewer-1 is viewer"
        assert await status("duty", "POST", "/api/v1/alarms/1/ack") == 404  # allowed; there is no alarm 1
        write = ("POST", "/api/v1/devices/pump-1/points/pressure_setpoint/write")
        assert await status("duty", *write, json={"value": 0.5}) == 403
        assert await status("duty", "GET", "/sim/devices") == 403  # breaking the plant is for engineers
        assert await status("engineer", "GET", "/sim/devices") == 200

        code, out, _ = await asyncio.to_thread(users, "revoke", "duty-1", "--site", str(site), "--data", str(data))
        assert code == 0 and out.strip() == "duty-1: revoked"
        assert await status("duty", "GET", "/api/v1/alarms") == 401
        assert await status("viewer", "GET", "/api/v1/alarms") == 200


def test_a_bad_role_or_a_second_user_of_one_name_is_refused(tmp_path: Path) -> None:
    site, data = write_site(tmp_path, "mqtt://127.0.0.1:1", free_port()), tmp_path / "data"
    code, _, err = users("add", "kim", "--role", "boss", "--site", str(site), "--data", str(data))
    assert code == 2 and "role: no role 'boss' (known: viewer, duty, engineer, manager, admin)" in err
    add(site, data, "kim", "duty")
    code, _, err = users("add", "kim", "--role", "admin", "--site", str(site), "--data", str(data))
    assert code == 2 and "a user 'kim' exists; revoke it first" in err
    code, _, err = users("revoke", "nobody", "--site", str(site), "--data", str(data))
    assert code == 1 and "no user 'nobody'" in err
