"""The morning briefing: a day's alarms and tasks, and the state the following morning starts with."""

from __future__ import annotations

from datetime import date

from facility.records import TaskKind, TaskStatus
from facility.site import Site
from facility.store.ops import OpsStore
from facility.vocabulary import Text
from reports import Report, briefing
from tests.reports.conftest import Seed, at, rules_of, schedules_of

DAY = date(2026, 12, 9)  # a Wednesday; the briefing is read on Thursday 10 December
MORNING = "2026-12-10 08:30"


async def seed_day(seed: Seed) -> None:
    late = await seed.raise_("low-pressure", "pump-1", "2026-12-08 23:50")  # the day before: not counted
    await seed.ack(late, "2026-12-08 23:52")
    await seed.clear("low-pressure", "pump-1", "2026-12-08 23:55")
    a1 = await seed.raise_("low-pressure", "pump-1", "2026-12-09 09:00")
    await seed.ack(a1, "2026-12-09 09:05")
    await seed.clear("low-pressure", "pump-1", "2026-12-09 09:30")
    await seed.raise_("low-pressure", "pump-2", "2026-12-09 10:00")
    await seed.clear("low-pressure", "pump-2", "2026-12-09 10:10")
    await seed.raise_("low-pressure", "pump-2", "2026-12-09 10:20")
    trapped = await seed.raise_("entrapment", "lift-1", "2026-12-09 14:00")
    await seed.ack(trapped, "2026-12-09 14:02", "bo")
    await seed.raise_("device-offline", "sump-1", "2026-12-09 22:00")
    await seed.raise_("device-offline", "fire-1", "2026-12-09 05:00")
    await seed.clear("device-offline", "fire-1", "2026-12-09 06:00")
    await seed.raise_("device-offline", "pump-2", "2026-12-10 01:00")  # overnight: offline this morning

    t1 = await seed.task("2026-12-09 09:01", "2026-12-09 13:01", device="pump-1", team="engineering", title="seal")
    await seed.work(t1, "2026-12-09 10:00", "2026-12-09 12:00")
    await seed.move(t1, "2026-12-09 12:30", TaskStatus.VERIFIED)
    t2 = await seed.task(
        "2026-12-09 14:01", "2026-12-09 14:31", kind=TaskKind.EMERGENCY, device="lift-1", vendor="otis", title="lift"
    )
    await seed.work(t2, "2026-12-09 14:50")
    await seed.task("2026-12-09 16:00", "2026-12-10 12:00", kind=TaskKind.COMPLAINT, title="leak")  # site-wide
    await seed.task("2026-12-07 09:00", "2026-12-08 09:00", device="sump-1", title="sump pump")
    t5 = await seed.task("2026-12-08 09:00", "2026-12-11 09:00", device="pump-2", title="cancelled")
    await seed.move(t5, "2026-12-09 10:00", TaskStatus.CANCELLED)
    t6 = await seed.task("2026-12-08 09:00", "2026-12-10 17:00", device="pump-2", title="done early")
    await seed.work(t6, "2026-12-10 07:00", "2026-12-10 08:00")
    await seed.ops.alarms.set_out_of_service("fire-1", True, "eng", "", "battery swap", at("2026-12-09 01:00"))
    await seed.ops.alarms.set_out_of_service("fire-1", False, "eng", "", "", at("2026-12-09 03:00"))
    await seed.ops.alarms.set_out_of_service("pump-2", True, "eng", "", "seal replaced", at("2026-12-09 11:00"))


def figures(report: Report) -> dict[str, object]:
    return {f.key: f.value for f in report.section("summary").figures}


def column(report: Report, section: str, key: str) -> list[object]:
    return [row[key] for row in report.section(section).rows]


def english(texts: list[object]) -> list[str]:
    return [t.en if isinstance(t, Text) else f"not a text: {t!r}" for t in texts]


async def test_the_briefing_counts_the_day_and_shows_this_morning(site: Site, store: OpsStore, seed: Seed) -> None:
    await seed_day(seed)
    report = await briefing(site, store, DAY, now=at(MORNING), rules=rules_of(site), schedules=schedules_of(site))

    assert (report.start, report.end) == (at("2026-12-09 00:00"), at("2026-12-10 00:00"))
    assert figures(report) == {
        "alarms": 6,
        "emergencies": 1,
        "tasks_opened": 3,
        "tasks_resolved": 1,
        "tasks_closed": 2,  # one verified, one cancelled
        "tasks_overdue": 2,
        "devices_offline": 2,
        "out_of_service": 1,
        "rounds_today": 2,
        "due_today": 1,
        "as_of": at(MORNING),
    }
    systems = {row["system"]: row for row in report.section("alarms_by_system").rows}
    assert (systems["water_supply"]["high"], systems["water_supply"]["total"]) == (3, 3)
    assert systems["elevators"]["emergency"] == 1 and systems["drainage"]["high"] == 1 and systems["fire"]["high"] == 1

    (emergency,) = report.section("emergencies").rows
    assert emergency["raised_at"] == at("2026-12-09 14:00") and emergency["activations"] == 1
    assert (emergency["acked_at"], emergency["acked_by"], emergency["cleared_at"]) == (
        at("2026-12-09 14:02"),
        "bo",
        None,
    )
    assert (emergency["device"], emergency["building"], emergency["state"]) == ("Lift 1", "B1", "acknowledged")

    assert english(column(report, "tasks_opened", "title")) == ["seal", "lift", "leak"]
    assert english(column(report, "tasks_overdue", "title")) == ["sump pump", "lift"]
    assert column(report, "tasks_overdue", "team") == ["", "Otis service"]
    assert column(report, "devices_offline", "device") == ["Sump 1", "Pump 2"]
    assert column(report, "devices_offline", "since") == [at("2026-12-09 22:00"), at("2026-12-10 01:00")]
    assert report.section("out_of_service").rows == [
        {"device": "Pump 2", "building": "B2", "since": at("2026-12-09 11:00"), "by": "eng", "reason": "seal replaced"}
    ]
    rounds = report.section("rounds_today").rows
    assert [r["at"] for r in rounds] == [at("2026-12-10 09:00")] * 2
    assert english(column(report, "rounds_today", "title")) == [
        "Monthly elevator maintenance visit",
        "Daily pump-room round",
    ]
    assert rounds[0]["devices"] == "Lift 1" and rounds[1]["devices"] == Text("全场", "whole site")
    assert rounds[1]["due"] == at("2026-12-10 13:00")  # its 4 h SLA
    assert english(column(report, "due_today", "title")) == ["leak"]


async def test_a_briefing_reprinted_later_shows_the_state_of_the_morning_after_its_day(
    site: Site, store: OpsStore, seed: Seed
) -> None:
    await seed_day(seed)
    await seed.move(2, "2026-12-10 20:00", TaskStatus.RESOLVED)  # the lift task, late
    await seed.clear("device-offline", "sump-1", "2026-12-10 10:00")
    await seed.ops.alarms.set_out_of_service("pump-2", False, "eng", "", "", at("2026-12-12 09:00"))
    report = await briefing(
        site, store, DAY, now=at("2026-12-20 09:00"), rules=rules_of(site), schedules=schedules_of(site)
    )
    summary = figures(report)
    assert summary["as_of"] == at("2026-12-11 00:00")
    assert column(report, "tasks_overdue", "id") == [4, 3]  # the lift task was resolved by then, not the complaint
    assert column(report, "devices_offline", "device") == ["Pump 2"]  # the sump answered again
    assert column(report, "out_of_service", "device") == ["Pump 2"]  # back in service only on the 12th
    assert summary["due_today"] == 1 and summary["alarms"] == 6


async def test_a_briefing_limited_to_buildings_keeps_their_devices_and_site_wide_work(
    site: Site, store: OpsStore, seed: Seed
) -> None:
    await seed_day(seed)
    b1 = await briefing(
        site, store, DAY, site.devices_in(["B1"]), now=at(MORNING), rules=rules_of(site), schedules=schedules_of(site)
    )
    assert figures(b1) == {
        "alarms": 3,
        "emergencies": 1,
        "tasks_opened": 3,  # the complaint of no device is site-wide
        "tasks_resolved": 1,
        "tasks_closed": 1,
        "tasks_overdue": 1,
        "devices_offline": 0,
        "out_of_service": 0,
        "rounds_today": 2,
        "due_today": 1,
        "as_of": at(MORNING),
    }
    assert {row["system"] for row in b1.section("alarms_by_system").rows} == {"water_supply", "elevators", "fire"}
    b2 = await briefing(
        site, store, DAY, {"pump-2"}, now=at(MORNING), rules=rules_of(site), schedules=schedules_of(site)
    )
    assert column(b2, "devices_offline", "device") == ["Pump 2"]
    assert english(column(b2, "rounds_today", "title")) == ["Daily pump-room round"]
    assert b2.buildings == ["B2"] and b2.devices == ["pump-2"]


async def test_the_default_briefing_at_the_morning_meeting_holds_last_night(
    site: Site, store: OpsStore, seed: Seed
) -> None:
    await seed.raise_("low-pressure", "pump-1", "2026-12-09 07:59")  # before yesterday's meeting: not in it
    await seed.raise_("low-pressure", "pump-2", "2026-12-09 08:00")
    trapped = await seed.raise_("entrapment", "lift-1", "2026-12-10 05:39")
    report = await briefing(
        site, store, None, now=at("2026-12-10 08:00"), rules=rules_of(site), schedules=schedules_of(site)
    )
    assert (report.start, report.end) == (at("2026-12-09 08:00"), at("2026-12-10 08:00"))
    assert figures(report)["alarms"] == 2 and figures(report)["emergencies"] == 1
    (emergency,) = report.section("emergencies").rows
    assert (emergency["alarm"], emergency["raised_at"]) == (trapped, at("2026-12-10 05:39"))
    assert report.title.zh == "晨会简报 2026-12-10"
    assert [r["at"] for r in report.section("rounds_today").rows] == [at("2026-12-10 09:00")] * 2  # today's

    by_day = await briefing(
        site, store, date(2026, 12, 9), now=at("2026-12-10 08:00"), rules=rules_of(site), schedules=schedules_of(site)
    )
    assert (by_day.start, by_day.end) == (at("2026-12-09 00:00"), at("2026-12-10 00:00"))  # --date: the calendar day
    assert figures(by_day)["emergencies"] == 0
