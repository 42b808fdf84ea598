"""A night shift through the API alone: an entrapment arrives, is found by the filters, shelved,
commented, acknowledged; its plan is worked; its task and a resident's complaint are taken to the
end; and each change is in the audit log. Real system: simulators, Mosquitto, gateway, rules, HTTP."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from facility.netutil import free_port
from testsupport.ops_db import folder_ops
from testsupport.servers import Mosquitto
from testsupport.system import TOKEN, EventStream, alarm, eventually, running_system, write_site

DEADLINE_S = 30.0
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat()


async def raise_entrapment(http: httpx.AsyncClient, events: EventStream) -> dict[str, Any]:
    injected = await http.post("/sim/faults", json={"device": "lift-1", "fault": "entrapment"})
    assert injected.status_code == 201, injected.text
    raised = await events.wait_for(alarm("elevator-entrapment", "unacknowledged"), DEADLINE_S)
    return raised.data


async def alarm_ids(http: httpx.AsyncClient, **params: Any) -> list[int]:
    response = await http.get("/api/v1/alarms", params=params)
    assert response.status_code == 200, response.text
    return [a["id"] for a in response.json()["items"]]


async def test_an_alarm_is_found_shelved_commented_and_acknowledged(tmp_path: Path, mosquitto: Mosquitto) -> None:
    site_path, data = write_site(tmp_path, mosquitto.url, free_port()), tmp_path / "data"
    async with running_system(site_path, data) as (url, _site):
        async with EventStream(url) as events, httpx.AsyncClient(base_url=url, headers=AUTH) as http:
            raised = await raise_entrapment(http, events)
            alarm_id = raised["id"]
            assert (raised["building"], raised["system"]) == ("B1", "elevators")  # events say where, too

            # The filters find it by what it is and where; the others leave it out.
            assert await alarm_ids(http, priority="emergency", building="B1", system="elevators") == [alarm_id]
            assert await alarm_ids(http, state="unacknowledged", device="lift-1") == [alarm_id]
            assert await alarm_ids(http, priority="low") == []
            assert await alarm_ids(http, building="B2") == []
            assert await alarm_ids(http, system="water_supply") == []
            assert await alarm_ids(http, since="2000-01-01T00:00:00", until="2000-01-02T00:00:00") == []
            page = (await http.get("/api/v1/alarms", params={"limit": 1, "offset": 5})).json()
            assert page["items"] == [] and page["total"] >= 1
            bad = await http.get("/api/v1/alarms", params={"priority": "urgent"})
            assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "priority", 0]

            await events.wait_for(lambda e: e.kind == "plan" and e.data["alarm"] == alarm_id, DEADLINE_S)
            detail = (await http.get(f"/api/v1/alarms/{alarm_id}")).json()
            assert (detail["building"], detail["system"], detail["device_name"]) == ("B1", "elevators", "Lift 1")
            assert detail["plan"] is not None  # the entrapment plan opened with it
            assert [h["action"] for h in detail["history"]] == ["raised"]

            # Shelving: the server sets who and when; a client that tries is refused, naming the field.
            forged = await http.post(
                f"/api/v1/alarms/{alarm_id}/shelve", json={"reason": "x", "minutes": 5, "shelved_by": "someone"}
            )
            assert forged.status_code == 422 and forged.json()["detail"][0]["loc"] == ["body", "shelved_by"]
            for body, field in (({"reason": "  ", "minutes": 5}, "reason"), ({"reason": "x", "minutes": 0}, "minutes")):
                refused = await http.post(f"/api/v1/alarms/{alarm_id}/shelve", json=body)
                assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["body", field]
            too_long = await http.post(f"/api/v1/alarms/{alarm_id}/shelve", json={"reason": "x", "minutes": 1441})
            assert too_long.status_code == 422

            shelved = await http.post(
                f"/api/v1/alarms/{alarm_id}/shelve", json={"reason": "lift engineer on site", "minutes": 30}
            )
            assert shelved.status_code == 200, shelved.text
            assert (shelved.json()["state"], shelved.json()["shelved_by"]) == ("shelved", "duty")
            await events.wait_for(alarm("elevator-entrapment", "shelved"), DEADLINE_S)
            assert await alarm_ids(http, state="shelved") == [alarm_id]
            assert await alarm_ids(http, state="unacknowledged") == []

            assert (await http.post(f"/api/v1/alarms/{alarm_id}/unshelve")).status_code == 200
            again = await http.post(f"/api/v1/alarms/{alarm_id}/unshelve")
            assert again.status_code == 409 and "not shelved" in again.json()["detail"]

            commented = await http.post(f"/api/v1/alarms/{alarm_id}/comments", json={"text": "residents reassured"})
            assert commented.status_code == 200
            acked = await http.post(f"/api/v1/alarms/{alarm_id}/ack")
            assert (acked.json()["state"], acked.json()["acked_by"]) == ("acknowledged", "duty")

            history = (await http.get(f"/api/v1/alarms/{alarm_id}")).json()["history"]
            assert [(h["action"], h["actor"]) for h in history] == [
                ("raised", "rules"),
                ("shelved", "duty"),
                ("unshelved", "duty"),
                ("comment", "duty"),
                ("acknowledged", "duty"),
            ]
            assert history[3]["detail"] == "residents reassured" and history[3]["source"] == "127.0.0.1"
            assert (await http.get("/api/v1/alarms/999999")).status_code == 404

            flood = await http.get("/api/v1/alarms/flood")
            assert flood.json() == {"active": False}

            audit = (await http.get("/api/v1/audit", params={"limit": 50})).json()
            done = [(e["action"], e["outcome"]) for e in reversed(audit) if e["target"].startswith("/api/v1/alarms")]
            assert done == [
                ("POST /alarms/{alarm_id}/shelve", "refused"),  # the forged field
                ("POST /alarms/{alarm_id}/shelve", "refused"),
                ("POST /alarms/{alarm_id}/shelve", "refused"),
                ("POST /alarms/{alarm_id}/shelve", "refused"),  # longer than a day
                ("POST /alarms/{alarm_id}/shelve", "ok"),
                ("POST /alarms/{alarm_id}/unshelve", "ok"),
                ("POST /alarms/{alarm_id}/unshelve", "refused"),
                ("POST /alarms/{alarm_id}/comments", "ok"),
                ("POST /alarms/{alarm_id}/ack", "ok"),
            ]
            assert all(e["actor"] == "duty" and e["source"] == "127.0.0.1" for e in audit)


async def test_the_plan_and_the_tasks_are_worked_to_the_end(tmp_path: Path, mosquitto: Mosquitto) -> None:
    site_path, data = write_site(tmp_path, mosquitto.url, free_port()), tmp_path / "data"
    async with running_system(site_path, data) as (url, _site):
        async with EventStream(url) as events, httpx.AsyncClient(base_url=url, headers=AUTH) as http:
            raised = await raise_entrapment(http, events)

            # The plan: listed while open, steps ticked by who, a step done twice refused.
            await events.wait_for(lambda e: e.kind == "plan" and e.data["alarm"] == raised["id"], DEADLINE_S)
            (plan,) = (await http.get("/api/v1/plans")).json()
            assert plan["alarm"] == raised["id"] and plan["building"] == "B1"
            first, *rest = [s["id"] for s in plan["steps"]]
            ticked = await http.post(f"/api/v1/plans/{plan['id']}/steps/{first}", json={"note": "called the vendor"})
            assert ticked.status_code == 200, ticked.text
            step = ticked.json()["steps"][0]
            assert (step["done_by"], step["done_from"], step["note"]) == ("duty", "127.0.0.1", "called the vendor")
            twice = await http.post(f"/api/v1/plans/{plan['id']}/steps/{first}", json={})
            assert twice.status_code == 409 and "already done" in twice.json()["detail"]
            unknown = await http.post(f"/api/v1/plans/{plan['id']}/steps/no-such-step", json={})
            assert unknown.status_code == 409
            await events.wait_for(lambda e: e.kind == "plan" and e.data["steps"][0]["done_by"] == "duty", DEADLINE_S)
            for step_id in rest:
                assert (await http.post(f"/api/v1/plans/{plan['id']}/steps/{step_id}", json={})).status_code == 200
            assert (await http.get(f"/api/v1/plans/{plan['id']}")).json()["state"] == "closed"
            assert (await http.get("/api/v1/plans")).json() == []
            assert [p["id"] for p in (await http.get("/api/v1/plans", params={"open": False})).json()] == [plan["id"]]

            # The rule's emergency task: verified only once the passengers are out and the car is back.
            tasks = (await http.get("/api/v1/tasks", params={"kind": "emergency"})).json()
            (task,) = tasks["items"]
            assert tasks["total"] == 1 and task["device"] == "lift-1" and task["team"] == "elevator-vendor"
            path = f"/api/v1/tasks/{task['id']}"
            skipped = await http.post(f"{path}/status", json={"status": "resolved"})
            assert skipped.status_code == 409 and "open" in skipped.json()["detail"]
            assert (await http.post(f"{path}/assign", json={"assignee": "wu"})).status_code == 200
            assert (await http.post(f"{path}/status", json={"status": "in_progress"})).status_code == 200
            ticked_item = await http.post(f"{path}/checklist/1", json={"done": True})
            assert ticked_item.json()["checklist"][1]["done"] is True
            for n in range(len(ticked_item.json()["checklist"])):  # verified only with every item done
                assert (await http.post(f"{path}/checklist/{n}", json={"done": True})).status_code == 200
            assert (await http.post(f"{path}/checklist/99", json={})).status_code == 409
            assert (await http.post(f"{path}/notes", json={"text": "car re-levelled"})).status_code == 200
            assert (await http.post(f"{path}/status", json={"status": "resolved"})).status_code == 200
            early = await http.post(f"{path}/status", json={"status": "verified"})
            assert early.status_code == 409  # the car is still stuck
            assert (await http.delete("/sim/faults/lift-1")).status_code == 200
            await events.wait_for(alarm("elevator-entrapment", "rtn_unacknowledged"), DEADLINE_S)

            async def verified() -> dict[str, Any] | None:
                response = await http.post(f"{path}/status", json={"status": "verified"})
                return response.json() if response.status_code == 200 else None

            done = await eventually(verified, DEADLINE_S, interval=0.5)
            assert done["status"] == "verified"
            actions = [h["action"] for h in (await http.get(path)).json()["history"]]
            assert actions[0] == "created" and "note" in actions and "condition cleared" in actions

            # A resident's complaint, made on the desk: its due time is the one promised.
            complaint = await http.post(
                "/api/v1/tasks",
                json={
                    "title": "3号楼 漏水投诉",
                    "priority": "high",
                    "due": "2030-01-01T09:00:00",
                    "checklist": ["回访"],
                },
            )
            assert complaint.status_code == 201, complaint.text
            made = complaint.json()
            assert (made["kind"], made["status"]) == ("complaint", "open")
            assert (made["source"]["kind"], made["source"]["by"]) == ("manual", "duty")
            assert made["due"] == 1893459600 * 10**9  # 09:00 in Asia/Shanghai, the site's zone
            for body, field in (
                ({"title": "x", "kind": "party"}, "kind"),
                ({"title": "x", "created_by": "me"}, "created_by"),
                ({"title": "x", "device": "no-such-device"}, "device"),
                ({"title": "x", "vendor": "no-such-vendor"}, "vendor"),
            ):
                refused = await http.post("/api/v1/tasks", json=body)
                assert refused.status_code == 422, refused.text
                assert refused.json()["detail"][0]["loc"] == ["body", field]
            by_due = (await http.get("/api/v1/tasks")).json()["items"]
            assert [t["id"] for t in by_due] == [task["id"], made["id"]]  # the entrapment was due first
            latest = (await http.get("/api/v1/tasks", params={"sort": "-changed_at"})).json()["items"]
            assert [t["id"] for t in latest] == [made["id"], task["id"]]  # the complaint changed last
            listed = (await http.get("/api/v1/tasks", params={"status": "open"})).json()
            assert [t["id"] for t in listed["items"]] == [made["id"]]
            overdue = (await http.get("/api/v1/tasks", params={"overdue": True})).json()
            assert overdue["items"] == []


async def test_rules_are_checked_and_reloaded_by_engineers(tmp_path: Path, mosquitto: Mosquitto) -> None:
    site_path, data = write_site(tmp_path, mosquitto.url, free_port()), tmp_path / "data"
    async with running_system(site_path, data) as (url, _site):
        async with httpx.AsyncClient(base_url=url, headers=AUTH) as http:
            rules = (await http.get("/api/v1/rules")).json()
            entrapment = next(r for r in rules if r["id"] == "elevator-entrapment")
            assert entrapment["devices"] == ["lift-1"] and entrapment["plan"] == "elevator-entrapment"
            assert entrapment["source"].endswith("elevators.yaml:3")

            bad = "rules:\n  - id: lift-slow\n    title: {zh: 慢, en: slow}\n    devices: {types: [elevator]}\n"
            bad += "    when: speed > 3\n    priority: low\n"
            checked = await http.post("/api/v1/rules/validate", json={"text": bad, "name": "lifts.yaml"})
            assert checked.status_code == 200
            assert checked.json()["ok"] is False
            (problem,) = checked.json()["problems"]
            assert problem.startswith("lifts.yaml:5: rules[0].when") and "speed" in problem

            good = bad.replace("speed > 3", "trips > 3")
            assert (await http.post("/api/v1/rules/validate", json={"text": good})).json() == {
                "ok": True,
                "problems": [],
            }

            reloaded = (await http.post("/api/v1/rules/reload")).json()
            assert reloaded == {"ok": True, "problems": [], "loaded": len(rules)}


async def test_a_point_history_is_cut_to_what_a_chart_can_draw(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """A day of one reading a second comes back as 500 min/mean/max buckets holding every reading."""
    from facility.model import Quality, Reading
    from facility.store.sqlite_telemetry import SqliteTelemetry

    site_path, data = write_site(tmp_path, mosquitto.url, free_port()), tmp_path / "data"
    data.mkdir()
    day_start = (time.time_ns() // 10**9 - 3 * 86_400) * 10**9  # a day before the system starts
    telemetry = SqliteTelemetry(data / "telemetry.db")
    readings = [
        Reading("pump-1", "outlet_pressure", 0.3 + (i % 100) / 1000, Quality.GOOD, day_start + i * 10**9)
        for i in range(86_400)
    ]
    for i in range(0, len(readings), 10_000):
        telemetry.write(readings[i : i + 10_000])
    telemetry.close()

    async with running_system(site_path, data) as (url, _site):
        async with httpx.AsyncClient(base_url=url, headers=AUTH) as http:
            params = {"since": iso(day_start), "until": iso(day_start + 86_400 * 10**9)}
            day = (await http.get("/api/v1/devices/pump-1/points/outlet_pressure/history", params=params)).json()
            assert day["unit"] == "MPa" and day["bucket_s"] == 172.8
            assert len(day["samples"]) == 500
            assert sum(s["count"] for s in day["samples"]) == 86_400
            assert min(s["min"] for s in day["samples"]) == 0.3 and max(s["max"] for s in day["samples"]) == 0.399

            minute = {"since": iso(day_start), "until": iso(day_start + 60 * 10**9), "max_samples": 100}
            raw = (await http.get("/api/v1/devices/pump-1/points/outlet_pressure/history", params=minute)).json()
            # The pump is polled every 200 ms, so a minute could hold 300: bucketed to 100, holding the 60.
            assert len(raw["samples"]) <= 100 and sum(s["count"] for s in raw["samples"]) == 60

            unknown = await http.get("/api/v1/devices/pump-1/points/no_such_point/history")
            assert unknown.status_code == 404
            backwards = await http.get(
                "/api/v1/devices/pump-1/points/outlet_pressure/history",
                params={"since": iso(day_start + 10**9), "until": iso(day_start)},
            )
            assert backwards.status_code == 422 and backwards.json()["detail"][0]["loc"] == ["query", "since"]


async def test_changes_are_rate_limited_per_user(tmp_path: Path, mosquitto: Mosquitto) -> None:
    site_path, data = write_site(tmp_path, mosquitto.url, free_port()), tmp_path / "data"
    async with running_system(site_path, data) as (url, _site):
        async with httpx.AsyncClient(base_url=url, headers=AUTH) as http:
            answers = [await http.post("/api/v1/tasks/1/notes", json={"text": "x"}) for _ in range(100)]
            limited = [a for a in answers if a.status_code == 429]
            assert limited, "100 changes in a burst should meet the limit"
            assert all(int(a.headers["retry-after"]) >= 1 for a in limited)
            assert {a.status_code for a in answers} == {404, 429}  # the others went through to the route
            assert (await http.get("/api/v1/tasks")).status_code == 200  # reading is never limited

    store = folder_ops(data, site_path)
    try:
        entries = await store.audit.entries(200)
    finally:
        await store.close()
    assert sum(e.outcome == "refused" for e in entries) == 100  # the limited ones too


async def test_a_desk_that_lost_its_stream_gets_what_it_missed(tmp_path: Path, mosquitto: Mosquitto) -> None:
    site_path, data = write_site(tmp_path, mosquitto.url, free_port()), tmp_path / "data"
    async with running_system(site_path, data) as (url, _site):
        async with httpx.AsyncClient(base_url=url, headers=AUTH) as http:
            async with EventStream(url) as before:
                raised = await raise_entrapment(http, before)
                last_seen = before.events[-1].id
            # Disconnected: what happens now is only heard by resuming.
            await http.post(f"/api/v1/alarms/{raised['id']}/comments", json={"text": "on my way"})
            await http.post(f"/api/v1/alarms/{raised['id']}/ack")

            async with EventStream(url, last_event_id=last_seen) as resumed:
                await resumed.wait_for(alarm("elevator-entrapment", "acknowledged"), DEADLINE_S)
                replayed = resumed.events
            assert replayed[0].id > last_seen
            assert [e.id for e in replayed] == sorted({e.id for e in replayed})  # in order, none twice
            assert any(e.kind == "alarm" and e.data["state"] == "acknowledged" for e in replayed)

            async with EventStream(url, last_event_id=1) as stale:  # from before this server started
                reset = await stale.wait_for(lambda e: e.kind == "reset", DEADLINE_S)
            assert reset.id >= replayed[-1].id  # resuming from it misses nothing newer
