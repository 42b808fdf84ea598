"""GET /api/v1/audit for a manager limited to buildings: the changes to their buildings' devices,
alarms, tasks and plans, and to site-wide tasks, and nothing of another building's, not even a
refused attempt on one. A manager of the whole site reads every entry, those that concern no
record too. On SQLite and on PostgreSQL.

The app is the service's own (create_app, every middleware) on a real ops store and users; the
gateway's write and the telemetry history, which these routes never use, fail if called."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from api.auth import TokenAuth
from facility.records import NewAlarm, NewTask, TaskKind
from facility.store.ops import OpsStore
from facility.store.plans import NewStep, PlanStore
from facility.store.tasks import TaskStore
from facility.store.users import Role, UserStore
from facility.vocabulary import Text
from tests.api.context import without_plant
from tests.reports.conftest import estate_in
from testsupport.ops_db import previous_release_made

TS = 1_800_000_000 * 1_000_000_000
B1, B2 = "pump-1", "pump-2"  # a device in each building (the estate of tests/reports)
USERS = {
    "ana": (Role.DUTY, ()),  # duty staff of the whole site, who does the work below
    "eng": (Role.ENGINEER, ()),
    "bo": (Role.DUTY, ("B1",)),  # B1's duty officer, who tries B2's alarm
    "m1": (Role.MANAGER, ("B1",)),
    "m2": (Role.MANAGER, ("B2",)),
    "boss": (Role.MANAGER, ()),
}


@dataclass
class Estate:
    http: httpx.AsyncClient
    tokens: dict[str, str]
    alarms: dict[str, int]  # by device
    tasks: dict[str | None, int]  # by device; None: the site-wide one
    plans: dict[str, int]  # by device

    async def ask(self, who: str, method: str, path: str, json: object = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        return await self.http.request(method, f"/api/v1{path}", headers=headers, json=json)

    async def audit(self, who: str) -> list[tuple[str, str, str]]:
        """(actor, action, target) of each entry the user reads, oldest first."""
        answer = await self.ask(who, "GET", "/audit")
        assert answer.status_code == 200, answer.text
        return [(e["actor"], e["action"], e["target"]) for e in reversed(answer.json())]


@pytest.fixture
async def estate(ops_store: OpsStore, tmp_path: Path) -> AsyncIterator[Estate]:
    """An alarm, a task and a plan instance in B1 and in B2, a site-wide task, and the users."""
    site = estate_in(tmp_path)
    users = UserStore(ops_store)
    tokens = {name: await users.add(name, role, buildings) for name, (role, buildings) in USERS.items()}
    alarms: dict[str, int] = {}
    plans: dict[str, int] = {}
    tasks: dict[str | None, int] = {}
    for device in (B1, B2):
        new = NewAlarm("low-pressure", device, "high", "压力低", "low pressure", "", "", TS)
        alarms[device] = int((await ops_store.alarms.raise_alarm(new))[0].id)
        step = NewStep("call", "联系", "call", 60 * 1_000_000_000)
        opened, _ = await PlanStore(ops_store).open("p", ("预案", "plan"), alarms[device], device, TS, [step])
        plans[device] = int(opened.id)
    for of in (B1, B2, None):
        new_task = NewTask(Text("修", "fix"), TaskKind.REPAIR, "high", TS, TS, "ana", device_id=of)
        tasks[of] = int((await TaskStore(ops_store).create(new_task)).id)
    app = create_app(without_plant(site, ops_store, tmp_path / "journal"), TokenAuth({}, users))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://desk") as http:
        yield Estate(http, tokens, alarms, tasks, plans)


async def test_a_manager_limited_to_a_building_reads_only_its_entries_and_the_site_wide_ones(
    estate: Estate,
) -> None:
    a1, a2 = estate.alarms[B1], estate.alarms[B2]
    t1, t2, t0 = estate.tasks[B1], estate.tasks[B2], estate.tasks[None]
    p2 = estate.plans[B2]
    changes = [
        ("ana", "POST", f"/alarms/{a1}/ack", None, 200),
        ("ana", "POST", f"/alarms/{a2}/ack", None, 200),
        ("bo", "POST", f"/alarms/{a2}/comments", {"text": "what is this?"}, 404),  # B2's: not hers to see
        ("ana", "POST", f"/tasks/{t1}/notes", {"text": "seal ordered"}, 200),
        ("ana", "POST", f"/tasks/{t2}/notes", {"text": "seal ordered"}, 200),
        ("ana", "POST", f"/tasks/{t0}/notes", {"text": "residents told"}, 200),
        ("ana", "POST", "/tasks", {"title": "noise in the pump room", "device": B2}, 201),
        ("ana", "POST", "/tasks", {"title": "lobby door sticks"}, 201),  # no device: site-wide
        ("ana", "POST", f"/plans/{p2}/close", None, 200),
        ("eng", "PUT", f"/devices/{B2}/out-of-service", {"reason": "seal replacement"}, 200),
        ("ana", "POST", "/alarms/999999/ack", None, 404),  # names no record: whole-site managers only
    ]
    for who, method, path, body, status in changes:
        answer = await estate.ask(who, method, path, body)
        assert answer.status_code == status, (who, method, path, answer.text)

    everything = await estate.audit("boss")
    assert [target for _, _, target in everything] == [
        f"/api/v1/alarms/{a1}/ack",
        f"/api/v1/alarms/{a2}/ack",
        f"/api/v1/alarms/{a2}/comments",
        f"/api/v1/tasks/{t1}/notes",
        f"/api/v1/tasks/{t2}/notes",
        f"/api/v1/tasks/{t0}/notes",
        "/api/v1/tasks",
        "/api/v1/tasks",
        f"/api/v1/plans/{p2}/close",
        B2,  # the store's own entry of taking it out of service, before the request's
        f"/api/v1/devices/{B2}/out-of-service",
        "/api/v1/alarms/999999/ack",
    ]
    assert await estate.audit("m1") == [
        ("ana", "POST /alarms/{alarm_id}/ack", f"/api/v1/alarms/{a1}/ack"),
        ("ana", "POST /tasks/{task_id}/notes", f"/api/v1/tasks/{t1}/notes"),
        ("ana", "POST /tasks/{task_id}/notes", f"/api/v1/tasks/{t0}/notes"),
        ("ana", "POST /tasks", "/api/v1/tasks"),  # the site-wide one
    ]
    assert await estate.audit("m2") == [
        ("ana", "POST /alarms/{alarm_id}/ack", f"/api/v1/alarms/{a2}/ack"),
        ("bo", "POST /alarms/{alarm_id}/comments", f"/api/v1/alarms/{a2}/comments"),
        ("ana", "POST /tasks/{task_id}/notes", f"/api/v1/tasks/{t2}/notes"),
        ("ana", "POST /tasks/{task_id}/notes", f"/api/v1/tasks/{t0}/notes"),
        ("ana", "POST /tasks", "/api/v1/tasks"),
        ("ana", "POST /tasks", "/api/v1/tasks"),
        ("ana", "POST /plans/{instance_id}/close", f"/api/v1/plans/{p2}/close"),
        ("eng", "out of service", B2),
        ("eng", "PUT /devices/{device_id}/out-of-service", f"/api/v1/devices/{B2}/out-of-service"),
    ]


async def test_entries_from_before_the_limit_are_for_managers_of_the_whole_site(ops_url: str) -> None:
    """An audit table the release before migrations made gets the columns when its database is
    adopted at start; its entries, whose building is not known, stay readable by managers of the
    whole site only."""
    await previous_release_made(
        ops_url,
        *(f"ALTER TABLE audit DROP COLUMN {column}" for column in ("device", "site_wide")),  # older still
        "INSERT INTO audit (ts, actor, source, action, target, detail, outcome) "
        "VALUES (1, 'ana', '', 'POST /alarms/{alarm_id}/ack', '/api/v1/alarms/1/ack', '{}', 'ok')",
    )

    upgraded = OpsStore(ops_url, site="t")
    await upgraded.start()
    try:
        assert [e.target for e in await upgraded.audit.entries()] == ["/api/v1/alarms/1/ack"]
        assert await upgraded.audit.entries(devices={B1}) == []
    finally:
        await upgraded.close()
