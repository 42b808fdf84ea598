"""Two estates on one ops database (PostgreSQL), each served by its own `facility run --simulate`
process, as a company runs them: the same device ids, the same rules, a fire of each estate's own.

- A duty officer of estate A limited to building B1 sees nothing of estate B anywhere: at A's API
  (alarm lists, an alarm of B by its id, acknowledging it, the stream, the reports) and at B's,
  which refuses them every route, `/sim` included, before reading a body.
- The company view (GET /api/v1/estates) shows both estates side by side to a user of every
  estate, only estate A to a user limited to it, and nothing to a user limited to buildings.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from facility.netutil import free_port
from testsupport.pg import fresh_database_url
from testsupport.processes import TOKEN, start_facility, stop_facility
from testsupport.servers import Mosquitto, poll, wait_listening
from testsupport.system import EventStream, write_site

ESTATES = ("estate-a", "estate-b")
ENTRAPMENT = "elevator-entrapment"  # the library's emergency on an elevator: lift-1 is in B1 in both


def estate_site(folder: Path, name: str, broker: Mosquitto, database: str, run: str) -> Path:
    """The test estate as `name`, on the shared ops database, its lift on a topic of its own and
    of this run (`run`): the broker outlives a test, and a lift left trapped by the last one must
    not reach this one."""
    folder.mkdir()
    path = write_site(folder, broker.url, free_port())
    text = re.sub(r"site: \{id: [^,]+,", f"site: {{id: {name},", path.read_text())
    text = text.replace('ops: "sqlite+aiosqlite:///var/ops.db"', f'ops: "{database}"')
    path.write_text(text.replace("test/lifts/", f"{name}-{run}/lifts/"))
    return path


def add_user(site: Path, name: str, *options: str) -> str:
    """`facility users add`, as an administrator runs it; the token it prints."""
    done = subprocess.run(
        [sys.executable, "-m", "facility_app", "users", "add", name, "-c", str(site), *options],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().rsplit(": ", 1)[1]


class Desk:
    """One estate's API, asked as one user."""

    def __init__(self, port: int, token: str) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.token = token

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, headers={"Authorization": f"Bearer {self.token}"}, timeout=30)

    def post(self, path: str, body: Any) -> httpx.Response:
        return httpx.post(self.url + path, json=body, headers={"Authorization": f"Bearer {self.token}"}, timeout=30)

    def entrapment(self) -> int | None:
        """The id of the estate's open entrapment alarm, once there is one."""
        page = self.get("/api/v1/alarms?limit=100").json()
        return next((a["id"] for a in page["items"] if a["rule"] == ENTRAPMENT), None)


@pytest.fixture
def estates(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[dict[str, tuple[Path, int]]]:
    """Both estates running, on one fresh PostgreSQL database: name -> (site file, HTTP port)."""
    # A run of its own: the same estates' processes of an earlier test left sessions in the broker,
    # with readings queued in them (a trapped lift's); new client ids and topics start clean.
    run = uuid.uuid4().hex[:8]
    with fresh_database_url() as database:
        sites = {name: estate_site(tmp_path / name, name, mosquitto, database, run) for name in ESTATES}
        ports = {name: free_port() for name in ESTATES}
        procs: dict[str, subprocess.Popen[str]] = {}
        try:
            for name, site in sites.items():
                args = ["run", "-c", "site.yaml", "--port", str(ports[name]), "--simulate", "--instance", run]
                procs[name] = start_facility(args, site.parent, {"FACILITY_TOKEN": TOKEN})
            for name, proc in procs.items():
                wait_listening(ports[name], timeout=60, proc=proc)
            yield {name: (sites[name], ports[name]) for name in ESTATES}
        finally:
            for proc in procs.values():
                code, output = stop_facility(proc)
                assert code == 0, output[-3000:]


async def test_a_b1_user_of_estate_a_sees_nothing_of_estate_b(estates: dict[str, tuple[Path, int]]) -> None:
    (site_a, port_a), (_, port_b) = estates["estate-a"], estates["estate-b"]
    alice = add_user(site_a, "alice", "--role", "engineer", "--building", "B1")  # estate A only, by default
    admin_a, admin_b = Desk(port_a, TOKEN), Desk(port_b, TOKEN)
    alice_a, alice_b = Desk(port_a, alice), Desk(port_b, alice)

    async with EventStream(admin_a.url, alice) as stream:
        assert admin_b.post("/sim/faults", {"device": "lift-1", "fault": "entrapment"}).status_code == 201
        b_alarm = await asyncio.to_thread(poll, admin_b.entrapment, bool, 30)
        assert b_alarm, "estate B's entrapment was not raised"
        assert admin_a.post("/sim/faults", {"device": "lift-1", "fault": "entrapment"}).status_code == 201
        a_event = await stream.wait_for(lambda e: e.kind == "alarm" and e.data["rule"] == ENTRAPMENT, 30)
    a_alarm = a_event.data["id"]
    assert a_alarm != b_alarm
    assert all(e.data.get("id") != b_alarm for e in stream.events if e.kind == "alarm")

    # At estate A: B's alarm is nowhere, not even by its id.
    seen = alice_a.get("/api/v1/alarms?limit=500&open=false").json()
    assert a_alarm in {a["id"] for a in seen["items"]} and b_alarm not in {a["id"] for a in seen["items"]}
    assert alice_a.get(f"/api/v1/alarms/{b_alarm}").status_code == 404
    assert alice_a.post(f"/api/v1/alarms/{b_alarm}/ack", {}).status_code == 404
    assert admin_a.get(f"/api/v1/alarms/{b_alarm}").status_code == 404  # the estate's limit, for everyone
    briefing = alice_a.get("/api/v1/reports/briefing")
    assert briefing.status_code == 200 and "estate-b" not in briefing.text
    assert str(b_alarm) not in re.findall(r'"alarm": ?(\d+)', briefing.text)
    assert admin_b.get(f"/api/v1/alarms/{b_alarm}").json()["acknowledged"] is False

    # At estate B: every route refuses her, /sim too, whatever the body.
    for path in ("/api/v1/alarms", "/api/v1/stream", "/api/v1/reports/briefing", "/api/v1/estates", "/sim/devices"):
        answer = alice_b.get(path)
        assert answer.status_code == 403 and "estate-b" in answer.json()["detail"], (path, answer.text)
    refused = alice_b.post("/sim/faults", {"device": "lift-1", "fault": "entrapment"})
    assert refused.status_code == 403, refused.text
    assert alice_b.post(f"/api/v1/alarms/{b_alarm}/ack", {}).status_code == 403
    assert admin_b.get(f"/api/v1/alarms/{b_alarm}").json()["acknowledged"] is False


async def test_the_company_view_shows_the_estates_a_user_may_reach(estates: dict[str, tuple[Path, int]]) -> None:
    (site_a, port_a), (_, port_b) = estates["estate-a"], estates["estate-b"]
    boss = add_user(site_a, "boss", "--role", "manager", "--every-estate")
    carol = add_user(site_a, "carol", "--role", "viewer")  # estate A, every building
    dave = add_user(site_a, "dave", "--role", "viewer", "--building", "B1")
    admin_b = Desk(port_b, TOKEN)
    assert admin_b.post("/sim/faults", {"device": "lift-1", "fault": "entrapment"}).status_code == 201
    assert await asyncio.to_thread(poll, admin_b.entrapment, bool, 30)

    view = Desk(port_a, boss).get("/api/v1/estates")
    assert view.status_code == 200, view.text
    rows = {row["site"]: row for row in view.json()["items"]}
    assert list(rows) == ["estate-a", "estate-b"]
    assert rows["estate-a"]["here"] and not rows["estate-b"]["here"]
    assert rows["estate-b"]["open_emergencies"] >= 1 and rows["estate-b"]["unacknowledged"] >= 1
    assert rows["estate-b"]["month_alarms"] >= 1
    assert rows["estate-a"]["open_emergencies"] == 0
    at_b = Desk(port_b, boss).get("/api/v1/estates").json()["items"]  # the same view from the other estate
    assert [(row["site"], row["here"]) for row in at_b] == [("estate-a", False), ("estate-b", True)]

    limited = Desk(port_a, carol).get("/api/v1/estates").json()["items"]
    assert [row["site"] for row in limited] == ["estate-a"]
    refused = Desk(port_a, dave).get("/api/v1/estates")
    assert refused.status_code == 403 and "limited to buildings" in refused.json()["detail"]
