"""The shift handover: what happened since the shift began, and what the next shift takes over."""

from __future__ import annotations

from datetime import date

import pytest

from facility.records import TaskKind, TaskStatus
from facility.site import Site
from facility.store.ops import OpsStore
from facility.store.plans import NewStep, PlanStore
from facility.vocabulary import Text
from reports import Report, briefing, handover, render
from reports.periods import shift_start
from tests.reports.conftest import MINUTE, ZONE, Seed, at, rules_of, schedules_of

NOW = "2026-12-09 12:00"


async def seed_shift(seed: Seed) -> None:
    pump = await seed.raise_("low-pressure", "pump-1", "2026-12-09 07:00")  # the night shift's
    t1 = await seed.task("2026-12-09 07:30", "2026-12-09 11:30", device="pump-1", team="engineering", title="pump")
    await seed.ack(pump, "2026-12-09 08:10")
    assert await seed.ops.alarms.comment(pump, "ana", "", "plumber called", at("2026-12-09 08:15"))
    trapped = await seed.raise_("entrapment", "lift-1", "2026-12-09 09:00")
    plans = PlanStore(seed.ops)
    steps = [
        NewStep("call", "呼叫救援", "Call the lift company", 5 * MINUTE),
        NewStep("rescue", "救人", "Rescue", 30 * MINUTE),
    ]
    plan, _ = await plans.open("entrapment", ("困人", "Entrapment"), trapped, "lift-1", at("2026-12-09 09:00"), steps)
    await plans.tick(plan.id, "call", "bo", "", "on the way", at("2026-12-09 09:03"))
    await seed.raise_("sump-high", "sump-1", "2026-12-09 09:30")
    await seed.tasks.add_note(t1, "parts ordered", "li", "", at("2026-12-09 10:00"))
    await seed.tasks.assign(t1, "li", "ana", "", at("2026-12-09 10:30"))
    await seed.clear("low-pressure", "pump-1", "2026-12-09 11:00")
    await seed.task("2026-12-09 11:15", "2026-12-10 11:15", kind=TaskKind.COMPLAINT, title="noise")


def in_zh(detail: object) -> object:
    return detail.zh if isinstance(detail, Text) else detail


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


async def test_the_handover_in_chinese_says_every_detail_in_chinese_at_site_times(
    site: Site, store: OpsStore, seed: Seed
) -> None:
    trapped = await seed.raise_("entrapment", "lift-1", "2026-12-09 08:30")
    await seed.ops.alarms.escalate_due({"emergency": 120 * 1_000_000_000}, at("2026-12-09 08:32"))
    await seed.ack(trapped, "2026-12-09 08:33")
    sump = await seed.raise_("sump-high", "sump-1", "2026-12-09 09:00")
    assert await seed.ops.alarms.shelve(
        sump, "ana", "", "pump being replaced", at("2026-12-09 12:00"), at("2026-12-09 09:05")
    )
    task = await seed.task("2026-12-09 09:10", "2026-12-09 17:00", device="sump-1", title="sump")
    await seed.tasks.assign(task, "li", "ana", "", at("2026-12-09 09:20"))
    await seed.tasks.assign(task, "wu", "ana", "", at("2026-12-09 09:25"))
    await seed.move(task, "2026-12-09 09:30", TaskStatus.IN_PROGRESS)

    report = await handover(site, store, None, at(NOW))
    alarms = {(e["action"], in_zh(e["detail"])) for e in report.section("alarm_events").rows}
    assert ("escalated", "2 分钟内未确认") in alarms
    assert ("shelved", "搁置至 2026-12-09 12:00：pump being replaced") in alarms  # site time, not 04:00:00Z
    tasks = [in_zh(e["detail"]) for e in report.section("task_events").rows]
    assert tasks == ["sump", "派给 li", "由 li 改派给 wu", "已派单 → 处理中"]

    page = render(report, "md", "zh")
    assert "Z" not in page.replace("Zone", "") and "within" not in page and "->" not in page
    assert "| 升级 |" in page and "| 已确认 |" in page
    english = render(report, "md", "en")
    assert "until 2026-12-09 12:00: pump being replaced" in english and "assigned → in progress" in english


async def test_a_closed_alarm_is_called_as_on_the_desk(site: Site, store: OpsStore, seed: Seed) -> None:
    lift = await seed.raise_("entrapment", "lift-1", "2026-12-09 09:00")
    await seed.clear("entrapment", "lift-1", "2026-12-09 09:20")
    await seed.ack(lift, "2026-12-09 09:30")
    report = await briefing(
        site, store, date(2026, 12, 9), now=at("2026-12-10 08:00"), rules=rules_of(site), schedules=schedules_of(site)
    )
    (row,) = report.section("emergencies").rows
    assert row["state"] == "normal"
    page = render(report, "md", "zh")
    assert "| 已恢复 |" in page and "正常 |" not in page and "已关闭" not in page
