"""The shift handover: what happened since the shift began, and what the next shift takes over."""

from __future__ import annotations

import pytest

from facility.site import Site
from facility.store.ops import OpsStore
from facility.store.plans import NewStep, PlanStore
from facility.store.tasks import TaskKind
from reports import Report, handover
from reports.periods import shift_start
from tests.reports.conftest import MINUTE, ZONE, Seed, at

NOW = "2026-12-09 12:00"


async def seed_shift(seed: Seed) -> None:
    pump = await seed.raise_("low-pressure", "pump-1", "2026-12-09 07:00")  # the night shift's
    t1 = await seed.task("2026-12-09 07:30", "2026-12-09 11:30", device="pump-1", team="engineering", title="pump")
    await seed.ack(pump, "2026-12-09 08:10")
    assert await seed.ops.comment(pump, "ana", "", "plumber called", at("2026-12-09 08:15"))
    trapped = await seed.raise_("entrapment", "lift-1", "2026-12-09 09:00")
    plans = PlanStore(seed.ops)
    steps = [
        NewStep("call", "呼叫救援", "Call the lift company", 5 * MINUTE),
        NewStep("rescue", "救人", "Rescue", 30 * MINUTE),
    ]
    plan, _ = await plans.open("entrapment", ("困人", "Entrapment"), trapped, "lift-1", at("2026-12-09 09:00"), steps)
    await plans.tick(plan["id"], "call", "bo", "", "on the way", at("2026-12-09 09:03"))
    await seed.raise_("sump-high", "sump-1", "2026-12-09 09:30")
    await seed.tasks.add_note(t1, "parts ordered", "li", "", at("2026-12-09 10:00"))
    await seed.tasks.assign(t1, "li", "ana", "", at("2026-12-09 10:30"))
    await seed.clear("low-pressure", "pump-1", "2026-12-09 11:00")
    await seed.task("2026-12-09 11:15", "2026-12-10 11:15", kind=TaskKind.COMPLAINT, title="noise")


def figures(report: Report) -> dict[str, object]:
    return {f.key: f.value for f in report.section("summary").figures}


async def test_the_handover_tells_what_happened_in_the_shift_and_what_is_open(
    site: Site, store: OpsStore, seed: Seed
) -> None:
    await seed_shift(seed)
    report = await handover(site, store, None, at(NOW))
    assert (report.start, report.end) == (at("2026-12-09 08:00"), at(NOW))  # the day shift began at 08:00
    assert figures(report) == {
        "alarms_raised": 2,
        "alarms_acknowledged": 1,
        "alarms_cleared": 1,
        "task_changes": 2,
        "plans_opened": 1,
        "plan_steps": 1,
        "comments": 2,
        "open_alarms": 2,
        "unfinished_tasks": 2,
        "open_plans": 1,
    }
    events = report.section("alarm_events").rows
    assert [(e["ts"], e["device"], e["action"]) for e in events] == [
        (at("2026-12-09 08:10"), "Pump 1", "acknowledged"),
        (at("2026-12-09 09:00"), "Lift 1", "raised"),
        (at("2026-12-09 09:30"), "Sump 1", "raised"),
        (at("2026-12-09 11:00"), "Pump 1", "returned to normal"),
    ]
    assert [(e["action"], e["actor"]) for e in report.section("task_events").rows] == [
        ("assigned", "ana"),
        ("created", "ana"),
    ]
    (step,) = report.section("plan_steps").rows
    assert (step["ts"], step["by"], step["note"], step["late"]) == (at("2026-12-09 09:03"), "bo", "on the way", False)
    comments = report.section("comments").rows
    assert [(c["on"], c["actor"], c["detail"]) for c in comments] == [
        ("alarm", "ana", "plumber called"),
        ("task", "li", "parts ordered"),
    ]
    assert [(a["device"], a["priority"], a["state"]) for a in report.section("open_alarms").rows] == [
        ("Lift 1", "emergency", "unacknowledged"),
        ("Sump 1", "low", "unacknowledged"),
    ]
    tasks = report.section("unfinished_tasks").rows
    assert [(t["status"], t["assignee"], t["overdue"]) for t in tasks] == [
        ("assigned", "li", True),
        ("open", None, False),
    ]
    (plan,) = report.section("open_plans").rows
    assert (plan["done"], plan["steps"], plan["overdue"]) == (1, 2, 1)  # the rescue was due at 09:30


async def test_since_moves_the_start_and_a_building_limit_leaves_other_buildings_out(
    site: Site, store: OpsStore, seed: Seed
) -> None:
    await seed_shift(seed)
    earlier = await handover(site, store, at("2026-12-09 06:00"), at(NOW))
    assert figures(earlier)["alarms_raised"] == 3 and figures(earlier)["task_changes"] == 3
    b1 = await handover(site, store, None, at(NOW), site.devices_in(["B1"]))
    assert figures(b1)["alarms_raised"] == 1 and figures(b1)["open_alarms"] == 1  # the sump is in the garage
    assert figures(b1)["unfinished_tasks"] == 2  # the complaint of no device is site-wide
    with pytest.raises(ValueError, match=r"^since: 2026-12-09 13:00 is after now \(2026-12-09 12:00\)$"):
        await handover(site, store, at("2026-12-09 13:00"), at(NOW))


@pytest.mark.parametrize(
    ("now", "start"),
    [
        ("2026-12-09 12:00", "2026-12-09 08:00"),
        ("2026-12-09 20:00", "2026-12-09 20:00"),
        ("2026-12-10 03:00", "2026-12-09 20:00"),
        ("2026-12-10 07:59", "2026-12-09 20:00"),
    ],
)
def test_shifts_start_at_eight_in_the_morning_and_the_evening(now: str, start: str) -> None:
    assert shift_start(at(now), ZONE) == at(start)
