"""Who may call what, for every route the running system serves: no valid token is 401 everywhere
but /healthz, a role below the one a route needs is 403 naming it, and a user limited to a building
finds another building's alarms, tasks, plans and devices neither in lists nor by id (404).

The routes come from the system's own OpenAPI document, so that a route added later is checked
too; NEEDS says which role each needs, and a route missing from it fails the test."""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from facility.netutil import free_port
from facility.store.users import Role
from tests.api.conftest import MANY_PROBES, Accounts
from testsupport.servers import Mosquitto
from testsupport.system import TOKEN, Event, EventStream, running_system, write_site

V1 = "/api/v1"
VIEWER, DUTY, ENGINEER, MANAGER = Role.VIEWER, Role.DUTY, Role.ENGINEER, Role.MANAGER
PHOTO = b"\xff\xd8\xff\xe0" + bytes(300)  # the start of a phone's photo
DEADLINE_S = 30.0  # a fault's rule `for` plus polling, on a loaded 2-core machine

# The role each route needs (None: none, no token either). A route of the app missing here fails
# test_every_route_needs_a_valid_token, so that nobody adds one without deciding who may call it.
NEEDS: dict[tuple[str, str], Role | None] = {
    ("GET", "/healthz"): None,
    ("GET", "/readyz"): None,
    ("GET", "/metrics"): VIEWER,
    ("GET", f"{V1}/me"): VIEWER,
    ("GET", f"{V1}/site"): VIEWER,
    ("GET", f"{V1}/estates"): VIEWER,
    ("GET", f"{V1}/estates/desks"): VIEWER,
    ("GET", f"{V1}/words"): VIEWER,
    ("GET", f"{V1}/audit"): MANAGER,
    ("GET", f"{V1}/dead-letters"): ENGINEER,
    ("GET", f"{V1}/dead-letters/export"): ENGINEER,
    ("GET", f"{V1}/alarms"): VIEWER,
    ("GET", f"{V1}/alarms/flood"): VIEWER,
    ("GET", f"{V1}/alarms/export"): VIEWER,
    ("GET", f"{V1}/alarms/{{alarm_id}}"): VIEWER,
    ("POST", f"{V1}/alarms/{{alarm_id}}/ack"): DUTY,
    ("POST", f"{V1}/alarms/{{alarm_id}}/shelve"): DUTY,
    ("POST", f"{V1}/alarms/{{alarm_id}}/unshelve"): DUTY,
    ("POST", f"{V1}/alarms/{{alarm_id}}/comments"): DUTY,
    ("GET", f"{V1}/devices"): VIEWER,
    ("GET", f"{V1}/devices/{{device_id}}"): VIEWER,
    ("GET", f"{V1}/devices/{{device_id}}/points/{{point}}/history"): VIEWER,
    ("PUT", f"{V1}/devices/{{device_id}}/out-of-service"): ENGINEER,
    ("DELETE", f"{V1}/devices/{{device_id}}/out-of-service"): ENGINEER,
    ("POST", f"{V1}/devices/{{device}}/points/{{point}}/write"): ENGINEER,
    ("GET", f"{V1}/devices/{{device_id}}/record"): VIEWER,
    ("PUT", f"{V1}/devices/{{device_id}}/record"): ENGINEER,
    ("GET", f"{V1}/devices/{{device_id}}/history"): VIEWER,
    ("GET", f"{V1}/equipment"): VIEWER,
    ("GET", f"{V1}/tasks"): VIEWER,
    ("POST", f"{V1}/tasks"): DUTY,
    ("GET", f"{V1}/tasks/{{task_id}}"): VIEWER,
    ("POST", f"{V1}/tasks/{{task_id}}/assign"): DUTY,
    ("POST", f"{V1}/tasks/{{task_id}}/status"): DUTY,
    ("POST", f"{V1}/tasks/{{task_id}}/checklist/{{item}}"): DUTY,
    ("POST", f"{V1}/tasks/{{task_id}}/notes"): DUTY,
    ("GET", f"{V1}/tasks/assignees"): VIEWER,
    ("GET", f"{V1}/tasks/export"): VIEWER,
    ("POST", f"{V1}/tasks/{{task_id}}/attachments"): DUTY,
    ("GET", f"{V1}/tasks/{{task_id}}/attachments"): VIEWER,
    ("GET", f"{V1}/tasks/{{task_id}}/attachments/{{attachment_id}}"): VIEWER,
    ("GET", f"{V1}/plans"): VIEWER,
    ("GET", f"{V1}/plans/{{instance_id}}"): VIEWER,
    ("POST", f"{V1}/plans/{{instance_id}}/steps/{{step_id}}"): DUTY,
    ("POST", f"{V1}/plans/{{instance_id}}/close"): DUTY,
    ("POST", f"{V1}/plans/{{instance_id}}/steps/{{step_id}}/attachments"): DUTY,
    ("GET", f"{V1}/plans/{{instance_id}}/steps/{{step_id}}/attachments"): VIEWER,
    ("GET", f"{V1}/plans/{{instance_id}}/steps/{{step_id}}/attachments/{{attachment_id}}"): VIEWER,
    ("GET", f"{V1}/rules"): ENGINEER,
    ("POST", f"{V1}/rules/validate"): ENGINEER,
    ("POST", f"{V1}/rules/reload"): ENGINEER,
    ("GET", f"{V1}/reports/briefing"): VIEWER,
    ("GET", f"{V1}/reports/handover"): VIEWER,
    ("GET", f"{V1}/reports/monthly"): VIEWER,
    ("GET", f"{V1}/stream"): VIEWER,
    # The simulators: breaking the plant is for engineers.
    ("GET", "/sim/devices"): ENGINEER,
    ("POST", "/sim/faults"): ENGINEER,
    ("DELETE", "/sim/faults/{device}"): ENGINEER,
    ("DELETE", "/sim/faults/{device}/{fault}"): ENGINEER,
    ("GET", "/sim/scenarios"): ENGINEER,
    ("POST", "/sim/scenarios"): ENGINEER,
    ("GET", "/sim/scenarios/{run_id}"): ENGINEER,
    ("DELETE", "/sim/scenarios/{run_id}"): ENGINEER,
}

# Path parameters of records nobody has: a route answers them with 404, or 422 for the empty body
# sent to every route that takes one, so that checking who may ask changes nothing.
UNKNOWN = {"integer": "999999", "string": "nope"}


@dataclass
class Answer:
    status: int
    headers: httpx.Headers
    body: Any  # the JSON document, or None for an event stream (only its head is read)


async def ask(http: httpx.AsyncClient, method: str, path: str, *, token: str | None = None, **kw: Any) -> Answer:
    """One request; a 200 event stream is closed once its head is in."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else kw.pop("headers", {})
    async with http.stream(method, path, headers=headers, **kw) as response:
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            return Answer(response.status_code, response.headers, None)
        await response.aread()
        is_json = response.headers.get("content-type", "").startswith("application/json")
        return Answer(response.status_code, response.headers, response.json() if is_json else response.text)


@dataclass
class Route:
    method: str
    path: str  # as the OpenAPI document has it, {name} for each path parameter
    url: str  # with every path parameter filled in with a record nobody has
    takes_body: bool

    @property
    def key(self) -> tuple[str, str]:
        return self.method, self.path

    async def call(self, http: httpx.AsyncClient, **kw: Any) -> Answer:
        return await ask(http, self.method, self.url, json={} if self.takes_body else None, **kw)


async def served_routes(http: httpx.AsyncClient) -> list[Route]:
    """Every operation of the system's OpenAPI document."""
    document = (await http.get("/api/openapi.json")).json()
    routes = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            url = path
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path":
                    url = url.replace(f"{{{parameter['name']}}}", UNKNOWN[parameter["schema"]["type"]])
            routes.append(Route(method.upper(), path, url, "requestBody" in operation))
    return routes


@contextlib.asynccontextmanager
async def one_user_per_role(
    tmp_path: Path, mosquitto: Mosquitto, accounts: Accounts
) -> AsyncIterator[tuple[httpx.AsyncClient, list[Route], dict[Role, str]]]:
    """The test estate with a user of each role (`viewer-1` ...); yields a client, the routes and
    the tokens by role."""
    site = write_site(tmp_path, mosquitto.url, free_port(), extra=MANY_PROBES)
    tokens = await accounts.add_many([(f"{role.name.lower()}-1", role, ()) for role in Role])
    async with running_system(site, accounts.data) as (url, _site), httpx.AsyncClient(base_url=url) as http:
        yield http, await served_routes(http), {role: tokens[f"{role.name.lower()}-1"] for role in Role}


def described(answer: Answer) -> str:
    return f"{answer.status} {answer.body!r}"


async def test_every_route_needs_a_valid_token(tmp_path: Path, mosquitto: Mosquitto, accounts: Accounts) -> None:
    async with one_user_per_role(tmp_path, mosquitto, accounts) as (http, routes, tokens):
        served = {route.key for route in routes}
        assert served - NEEDS.keys() == set(), "routes without an entry in NEEDS: say which role each needs"
        assert NEEDS.keys() - served == set(), "NEEDS names routes the app does not serve"

        assert (await ask(http, "GET", f"{V1}/me", token=tokens[VIEWER])).status == 200
        await accounts.revoke("viewer-1")
        bad = {
            "no header": {},
            "no token": {"Authorization": "Bearer"},
            "another scheme": {"Authorization": f"Basic {TOKEN}"},
            "unknown token": {"Authorization": "Bearer not-a-token"},
            "revoked token": {"Authorization": f"Bearer {tokens[VIEWER]}"},
        }
        for route in routes:
            for why, headers in bad.items():
                answer = await route.call(http, headers=headers)
                if NEEDS[route.key] is None:
                    assert answer.status == 200, (route.key, why, described(answer))
                else:
                    assert answer.status == 401, (route.key, why, described(answer))
                    assert answer.headers["www-authenticate"] == "Bearer", (route.key, why)
        health = await ask(http, "GET", "/healthz")
        assert health.body["status"] == "ok"


async def test_every_route_needs_its_role(tmp_path: Path, mosquitto: Mosquitto, accounts: Accounts) -> None:
    async with one_user_per_role(tmp_path, mosquitto, accounts) as (http, routes, tokens):
        for route in routes:
            needed = NEEDS[route.key]
            if needed is None:
                continue
            for role in Role:
                answer = await route.call(http, token=tokens[role])
                if role < needed:
                    refused = f"this needs the role {needed.name.lower()} or above; {role.name.lower()}-1 is "
                    assert answer.status == 403, (route.key, role.name, described(answer))
                    assert answer.body == {"detail": refused + role.name.lower()}, (route.key, role.name)
                elif role == needed:  # a record nobody has, or the empty body: 404 or 422, never refused
                    assert answer.status not in (401, 403) and answer.status < 500, (route.key, described(answer))


# A lift in each building, and a lighting panel in B1 and the pump in B2 with a point each that
# may be written.
BUILDINGS = """\
  - id: lift-2
    name: Lift 2
    profile: elevator
    location: {{building: B2}}
    mqtt: {{topic: test/lifts/lift-2, interval: 200ms}}
  - id: lights-1
    name: Lights 1
    profile: lighting_panel
    location: {{building: B1}}
    modbus: {{host: 127.0.0.1, port: {port}, unit: 3, interval: 200ms, timeout: 500ms}}
writes:
  - {{device: pump-1, point: pressure_setpoint, min: 0.3, max: 0.6}}
  - {{device: lights-1, point: circuit_1_command, values: [true, false]}}
"""
B1_DEVICES = {"lift-1", "lights-1"}


def of(kind: str, device: str) -> Callable[[Event], bool]:
    return lambda e: e.kind == kind and e.data.get("device") == device


@dataclass
class Records:
    """An entrapment's alarm, task and plan instance."""

    alarm: int
    task: int
    plan: int
    step: str  # the plan's first step


async def entrapment(http: httpx.AsyncClient, events: EventStream, lift: str) -> Records:
    """Trap passengers in `lift`, and wait for the alarm, task and plan it makes."""
    injected = await http.post("/sim/faults", json={"device": lift, "fault": "entrapment"})
    assert injected.status_code == 201, injected.text
    alarm = await events.wait_for(of("alarm", lift), DEADLINE_S)
    task = await events.wait_for(of("task", lift), DEADLINE_S)
    plan = await events.wait_for(of("plan", lift), DEADLINE_S)
    return Records(alarm.data["id"], task.data["id"], plan.data["id"], plan.data["steps"][0]["id"])


async def test_a_user_limited_to_a_building_sees_and_acts_on_its_records_only(
    tmp_path: Path, mosquitto: Mosquitto, accounts: Accounts
) -> None:
    port = free_port()
    site = write_site(tmp_path, mosquitto.url, port, extra=BUILDINGS.format(port=port) + MANY_PROBES)
    tokens = await accounts.add_many([("ana", DUTY, ("B1",)), ("eng", ENGINEER, ("B1",))])
    admin = {"Authorization": f"Bearer {TOKEN}"}
    async with running_system(site, accounts.data) as (url, _site), httpx.AsyncClient(base_url=url) as http:
        async with (
            EventStream(url) as everything,
            EventStream(url, tokens["ana"]) as hers,
            httpx.AsyncClient(base_url=url, headers=admin) as plant,
        ):
            b2 = await entrapment(plant, everything, "lift-2")
            b1 = await entrapment(plant, everything, "lift-1")
            # Her stream is in order: the first event of another building, or else B1's alarm, which
            # came after every event of B2's records.
            foreign = lambda e: e.data.get("device") not in B1_DEVICES | {None}  # noqa: E731
            first = await hers.wait_for(lambda e: foreign(e) or of("alarm", "lift-1")(e), DEADLINE_S)
            assert (first.kind, first.data["id"]) == ("alarm", b1.alarm), first
            await hers.wait_for(of("task", "lift-1"), DEADLINE_S)
            await hers.wait_for(of("plan", "lift-1"), DEADLINE_S)

        async def as_ana(method: str, path: str, **kw: Any) -> Answer:
            return await ask(http, method, V1 + path, token=tokens["ana"], **kw)

        async def as_eng(method: str, path: str, **kw: Any) -> Answer:
            return await ask(http, method, V1 + path, token=tokens["eng"], **kw)

        # Another building's records answer as if there were none; hers answer, in the same order.
        # (The order matters for hers: an alarm is shelved after it is acknowledged, and so on.)
        by_id: list[tuple[str, str, dict[str, Any] | None, str]] = [
            ("GET", "/alarms/{alarm}", None, "no alarm {alarm}"),
            ("POST", "/alarms/{alarm}/ack", None, "no alarm {alarm}"),
            ("POST", "/alarms/{alarm}/shelve", {"reason": "lift being freed", "minutes": 30}, "no alarm {alarm}"),
            ("POST", "/alarms/{alarm}/comments", {"text": "vendor called"}, "no alarm {alarm}"),
            ("POST", "/alarms/{alarm}/unshelve", None, "no alarm {alarm}"),
            ("GET", "/tasks/{task}", None, "no task {task}"),
            ("POST", "/tasks/{task}/assign", {"assignee": "li"}, "no task {task}"),
            ("POST", "/tasks/{task}/status", {"status": "in_progress"}, "no task {task}"),
            ("POST", "/tasks/{task}/checklist/0", {"done": True}, "no task {task}"),
            ("POST", "/tasks/{task}/notes", {"text": "on the way"}, "no task {task}"),
            ("GET", "/plans/{plan}", None, "no plan instance {plan}"),
            ("POST", "/plans/{plan}/steps/{step}", {"note": "talked to them"}, "no plan instance {plan}"),
            ("POST", "/plans/{plan}/close", None, "no plan instance {plan}"),
        ]
        for method, template, body, missing in by_id:
            theirs = await as_ana(method, template.format(**vars(b2)), json=body)
            assert (theirs.status, theirs.body) == (404, {"detail": missing.format(**vars(b2))}), (method, template)
            mine = await as_ana(method, template.format(**vars(b1)), json=body)
            assert mine.status == 200, (method, template, described(mine))

        # A photo on a step of her plan, not of theirs; nor may she read theirs.
        photo = {
            "content": PHOTO,
            "headers": {"Authorization": f"Bearer {tokens['ana']}", "Content-Type": "image/jpeg"},
        }
        files = "/plans/{plan}/steps/{step}/attachments"
        theirs = await http.post(V1 + files.format(**vars(b2)), params={"name": "door.jpg"}, **photo)
        assert (theirs.status_code, theirs.json()) == (404, {"detail": f"no plan instance {b2.plan}"})
        mine_added = await http.post(V1 + files.format(**vars(b1)), params={"name": "door.jpg"}, **photo)
        assert mine_added.status_code == 201, mine_added.text
        added_by_admin = await http.post(
            V1 + files.format(**vars(b2)),
            params={"name": "b2.jpg"},
            content=PHOTO,
            headers={**admin, "Content-Type": "image/jpeg"},
        )
        assert added_by_admin.status_code == 201, added_by_admin.text
        for path in (files.format(**vars(b2)), added_by_admin.json()["url"].removeprefix(V1)):
            assert (await as_ana("GET", path)).status == 404, path
        assert (await as_ana("GET", mine_added.json()["url"].removeprefix(V1))).status == 200

        device_routes: list[tuple[Callable[..., Any], str, str, dict[str, Any] | None]] = [
            (as_ana, "GET", "/devices/{lift}", None),
            (as_ana, "GET", "/devices/{lift}/points/floor/history", None),
            (as_eng, "PUT", "/devices/{lift}/out-of-service", {"reason": "rope inspection"}),
            (as_eng, "DELETE", "/devices/{lift}/out-of-service", None),
        ]
        for user, method, template, body in device_routes:
            theirs = await user(method, template.format(lift="lift-2"), json=body)
            assert (theirs.status, theirs.body) == (404, {"detail": "no device 'lift-2'"}), (method, template)
            mine = await user(method, template.format(lift="lift-1"), json=body)
            assert mine.status == 200, (method, template, described(mine))
        made = await as_ana("POST", "/tasks", json={"title": "check the lift", "device": "lift-2"})
        assert made.status == 422 and made.body["detail"][0]["loc"] == ["body", "device"], described(made)

        # The lists hold her building's records, and the site-wide ones (tasks of no device).
        alarms = await as_ana("GET", "/alarms", params={"open": "false"})
        assert [(a["id"], a["building"]) for a in alarms.body["items"]] == [(b1.alarm, "B1")]
        assert alarms.body["total"] == 1
        asked_for_b2 = await as_ana("GET", "/alarms", params={"building": "B2", "device": "lift-2"})
        assert asked_for_b2.body["items"] == [] and asked_for_b2.body["total"] == 0
        tasks = (await as_ana("GET", "/tasks")).body
        assert b1.task in {t["id"] for t in tasks["items"]}
        assert {t["device"] for t in tasks["items"]} <= B1_DEVICES | {None}
        assert tasks["total"] == len(tasks["items"])
        b2_tasks = (await as_ana("GET", "/tasks", params={"building": "B2"})).body
        assert {t["device"] for t in b2_tasks["items"]} <= {None}
        assert {d["id"] for d in (await as_ana("GET", "/devices")).body} == B1_DEVICES
        assert (await as_ana("GET", "/devices", params={"building": "B2"})).body == []
        assert [p["id"] for p in (await as_ana("GET", "/plans", params={"open": "false"})).body] == [b1.plan]
        assert (await as_ana("GET", "/site")).body["buildings"] == ["B1"]

        # The files of the lists hold what the lists hold: her building's, and site-wide tasks.
        def ids(answer: Answer) -> set[int]:
            return {int(row[1]) for row in csv.reader(io.StringIO(answer.body.lstrip("\ufeff"))) if row[1].isdigit()}

        alarm_file = await as_ana("GET", "/alarms/export", params={"open": "false", "format": "csv"})
        assert alarm_file.status == 200 and ids(alarm_file) == {b1.alarm}, described(alarm_file)
        task_file = await as_ana("GET", "/tasks/export", params={"format": "csv"})
        assert ids(task_file) == {t["id"] for t in tasks["items"]}
        b2_file = await as_ana("GET", "/tasks/export", params={"format": "csv", "building": "B2"})
        assert ids(b2_file) == {t["id"] for t in b2_tasks["items"]}


async def test_a_user_limited_to_a_building_cannot_write_a_point_of_another(
    tmp_path: Path, mosquitto: Mosquitto, accounts: Accounts
) -> None:
    port = free_port()
    site = write_site(tmp_path, mosquitto.url, port, extra=BUILDINGS.format(port=port) + MANY_PROBES)
    token = await accounts.add("eng", ENGINEER, ["B1"])
    async with running_system(site, accounts.data) as (url, _site), httpx.AsyncClient(base_url=url) as http:
        mine = await ask(
            http, "POST", f"{V1}/devices/lights-1/points/circuit_1_command/write", token=token, json={"value": False}
        )
        assert mine.status == 200, described(mine)
        theirs = await ask(
            http, "POST", f"{V1}/devices/pump-1/points/pressure_setpoint/write", token=token, json={"value": 0.4}
        )
        assert (theirs.status, theirs.body) == (404, {"detail": "no device 'pump-1'"}), described(theirs)
