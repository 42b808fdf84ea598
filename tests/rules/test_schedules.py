"""Preventive schedules: each occurrence opens one task, on time, once, across restarts."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from facility.calendar import occurrences_before
from facility.model import Quality, Reading
from facility.site import Site, load_site
from facility.store.ops import OpsStore
from facility.yamlfile import ConfigError
from rules.schedules import Due, Schedule, Scheduler, When, load_schedules

SHANGHAI = ZoneInfo("Asia/Shanghai")

SCHEDULES = """\
schedules:
  - id: round
    title: {zh: 巡检, en: Round}
    when: {every: day, at: "09:00"}
    task: {kind: inspection, team: engineering, sla: 4h, checklist: [{zh: 看, en: Look}]}
  - id: pump-service
    title: {zh: 保养, en: Service}
    devices: {types: [booster_pump]}
    when: {meter: {point: run_hours, every: 500}}
    task: {team: engineering, sla: 7d}
"""


def local(day: str, at: str = "00:00") -> int:
    """UTC ns of a wall-clock time in Shanghai, e.g. local("2025-03-10", "09:00")."""
    return int(datetime.fromisoformat(f"{day}T{at}").replace(tzinfo=SHANGHAI).timestamp()) * 1_000_000_000


@pytest.fixture
def site(tmp_path: Path) -> Site:
    (tmp_path / "schedules.yaml").write_text(SCHEDULES)
    path = tmp_path / "site.yaml"
    path.write_text(
        "site: {id: t, timezone: Asia/Shanghai}\nschedules: [schedules.yaml]\ndevices:\n"
        "  - {id: pump-1, profile: booster_pump, modbus: {port: 1502}}\n"
        "  - {id: lift-1, profile: elevator, mqtt: {topic: a}}\n"
    )
    return load_site(path)


@pytest.fixture
def schedules(site: Site, tmp_path: Path) -> list[Schedule]:
    return load_schedules(site, [tmp_path / "schedules.yaml"])


@pytest.fixture
def ops(ops_store: OpsStore) -> OpsStore:
    return ops_store


def scheduler(site: Site, ops: OpsStore, schedules: list[Schedule], dues: list[Due]) -> Scheduler:
    """A scheduler as after a (re)start: fresh memory, the store's marks."""
    return Scheduler(site, ops, dues.append, schedules)


def run_hours(value: float, ts: int = 0, quality: Quality = Quality.GOOD) -> list[Reading]:
    return [Reading("pump-1", "run_hours", value, quality, ts)]


def test_library_loads_for_the_demo_site(repo_root: Path) -> None:
    site = load_site(repo_root / "sites/demo/site.yaml")
    targets = {s.id: s.targets for s in load_schedules(site)}
    assert targets == {
        "pump-room-round": (None,),
        "generator-test-run": (None,),
        "fire-extinguisher-check": (None,),
        "elevator-maintenance": ("elevator-b1-1", "elevator-b1-2", "elevator-b2-1", "elevator-b3-1"),
        "booster-pump-service": ("pump-b2-1", "pump-b2-2", "pump-b2-3"),
    }


def test_a_site_schedule_replaces_the_library_one_of_the_same_id(site: Site) -> None:
    (site.path("round.yaml")).write_text(
        "schedules:\n  - id: pump-room-round\n    title: {zh: 巡检, en: Round}\n"
        '    when: {every: day, at: "07:30"}\n    task: {team: night-shift, sla: 2h}\n'
    )
    changed = load_site(site.path("site.yaml")).model_copy(update={"schedules": ["schedules.yaml", "round.yaml"]})
    (round_,) = [s for s in load_schedules(changed) if s.id == "pump-room-round"]
    assert (round_.spec.when.at, round_.spec.task.team) == ("07:30", "night-shift")


def test_errors_name_file_line_and_field(site: Site, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "schedules:\n"
        "  - id: weekly\n"
        "    title: {zh: 周, en: Weekly}\n"
        "    when: {every: week, at: '9am'}\n"
        "    task: {team: a, sla: 1d}\n"
        "  - id: meter-without-devices\n"
        "    title: {zh: 表, en: Meter}\n"
        "    when:\n"
        "      meter: {point: run_hours, every: 100}\n"
        "    task: {team: a, sla: 1d}\n"
        "  - id: wrong-point\n"
        "    title: {zh: 表, en: Meter}\n"
        "    devices: {ids: [pump-1]}\n"
        "    when:\n"
        "      meter: {point: hours_run, every: 100}\n"
        "    task: {team: a, sla: 1d}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_schedules(site, [path])
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:4: schedules[0].when.at: Value error, '9am' is not a time of day; write HH:MM, e.g. 09:00",
    ]

    path.write_text(path.read_text().replace("'9am'", "'09:00'"))
    with pytest.raises(ConfigError) as caught:
        load_schedules(site, [path])
    messages = [str(p) for p in caught.value.problems]
    assert messages[0] == f"{path}:4: schedules[0].when.weekday: every week needs `weekday` (mon ... sun)"
    assert messages[1] == f"{path}:9: schedules[1].when.meter: a meter is a point of a device: give `devices`"
    assert messages[2].startswith(
        f"{path}:15: schedules[2].when.meter.point: pump-1 (profile 'booster_pump') has no point 'hours_run' (known: "
    )
    assert len(messages) == 3


def test_day_31_falls_on_the_last_day_of_a_short_month() -> None:
    when = When(every="month", day=31, at="09:00")
    newest_first = occurrences_before(when, SHANGHAI, local("2024-03-15"))
    assert [next(newest_first) for _ in range(4)] == [
        local("2024-02-29", "09:00"),
        local("2024-01-31", "09:00"),
        local("2023-12-31", "09:00"),
        local("2023-11-30", "09:00"),
    ]


def test_weekly_falls_on_its_weekday_in_the_site_time_zone() -> None:
    # 2025-03-10 is a Monday; 09:00 in Shanghai is 01:00 UTC, so the UTC date is the same but the hour is not.
    when = When(every="week", weekday="mon", at="09:00")
    assert next(occurrences_before(when, SHANGHAI, local("2025-03-16", "23:59"))) == local("2025-03-10", "09:00")
    assert next(occurrences_before(when, SHANGHAI, local("2025-03-17", "09:00"))) == local("2025-03-17", "09:00")


async def test_daily_round_falls_due_once_a_day_at_its_local_time(
    site: Site, ops: OpsStore, schedules: list[Schedule]
) -> None:
    dues: list[Due] = []
    s = scheduler(site, ops, schedules, dues)
    await s.check(local("2025-03-10", "08:00"))  # a new schedule starts at its next occurrence
    await s.check(local("2025-03-10", "08:59"))
    assert dues == []

    await s.check(local("2025-03-10", "09:00") + 3_000_000_000)
    await s.check(local("2025-03-10", "09:00") + 8_000_000_000)
    await s.check(local("2025-03-10", "18:00"))
    (due,) = dues
    assert (due.schedule.id, due.device_id, due.ts) == ("round", None, local("2025-03-10", "09:00"))
    assert due.reason.en == "scheduled for 2025-03-10 09:00"

    await s.check(local("2025-03-11", "09:00"))
    assert [d.ts for d in dues] == [local("2025-03-10", "09:00"), local("2025-03-11", "09:00")]


async def test_a_restart_catches_up_missed_days_once_and_never_twice(
    site: Site, ops: OpsStore, schedules: list[Schedule]
) -> None:
    dues: list[Due] = []
    await scheduler(site, ops, schedules, dues).check(local("2025-03-10", "09:00"))  # the round of the 10th is marked

    # Down from the 10th to the 13th at noon: the 11th, 12th and 13th were missed.
    await scheduler(site, ops, schedules, dues).check(local("2025-03-13", "12:00"))
    (due,) = dues
    assert due.ts == local("2025-03-13", "09:00")
    assert due.reason.en == "caught up after a stop: 3 missed (2025-03-11 09:00 to 2025-03-13 09:00), opened once"
    assert "错过 3 次" in due.reason.zh

    await scheduler(site, ops, schedules, dues).check(local("2025-03-13", "12:01"))
    assert len(dues) == 1

    await scheduler(site, ops, schedules, dues).check(local("2025-03-14", "09:30"))  # down across one round
    assert dues[-1].reason.en == "caught up after a stop: due 2025-03-14 09:00"
    assert len(dues) == 2


async def test_meter_falls_due_once_per_multiple_and_counts_again_after_a_reset(
    site: Site, ops: OpsStore, schedules: list[Schedule]
) -> None:
    dues: list[Due] = []
    s = scheduler(site, ops, schedules, dues)
    now = local("2025-03-10", "08:00")  # before the round: only the meter can fall due here

    def feed(*values: float) -> None:
        for value in values:
            s.handle(run_hours(value, now))

    feed(100, 300, 599)  # 100 is the baseline: nothing until 600
    await s.check(now)
    assert dues == []
    feed(600.5, 700, 1099)
    await s.check(now)
    feed(1100, 1101)
    s.handle(run_hours(9000, now, Quality.STALE))  # a value that is not good counts for nothing
    await s.check(now)
    assert [d.reason.en for d in dues] == [
        "run_hours at 600.5 passed 600 (every 500, counted from 100)",
        "run_hours at 1100 passed 1100 (every 500, counted from 600)",
    ]
    assert {(d.schedule.id, d.device_id) for d in dues} == {("pump-service", "pump-1")}

    feed(40, 539)  # a replaced meter starts low: a new baseline, not a task
    await s.check(now)
    assert len(dues) == 2
    feed(540)
    await s.check(now)
    assert dues[-1].reason.en == "run_hours at 540 passed 540 (every 500, counted from 40)"


async def test_meter_baseline_survives_a_restart(site: Site, ops: OpsStore, schedules: list[Schedule]) -> None:
    dues: list[Due] = []
    now = local("2025-03-10", "08:00")
    first = scheduler(site, ops, schedules, dues)
    first.handle(run_hours(100, now))
    await first.check(now)

    second = scheduler(site, ops, schedules, dues)
    second.handle(run_hours(599, now))  # before the stored baseline is loaded: judged against it once loaded
    await second.check(now)
    assert dues == []
    second.handle(run_hours(610, now))
    await second.check(now)
    assert len(dues) == 1

    third = scheduler(site, ops, schedules, dues)
    third.handle(run_hours(650, now))
    await third.check(now)
    assert len(dues) == 1


async def test_nothing_is_announced_that_was_not_stored(site: Site, ops: OpsStore, schedules: list[Schedule]) -> None:
    dues: list[Due] = []
    now = local("2025-03-10", "08:00")
    s = scheduler(site, ops, schedules, dues)
    s.handle(run_hours(100, now))
    await s.check(now)

    async with ops.sessions.begin() as session:
        await session.execute(text("ALTER TABLE schedule_marks RENAME TO schedule_marks_away"))
    s.handle(run_hours(700, now))
    with pytest.raises(DBAPIError, match="schedule_marks"):
        await s.check(now)
    assert dues == []

    async with ops.sessions.begin() as session:
        await session.execute(text("ALTER TABLE schedule_marks_away RENAME TO schedule_marks"))
    await s.check(now)
    await s.check(now)
    assert [d.reason.en for d in dues] == ["run_hours at 700 passed 600 (every 500, counted from 100)"]


async def test_run_announces_a_meter_crossing_without_waiting_for_the_interval(
    site: Site, ops: OpsStore, schedules: list[Schedule]
) -> None:
    announced = asyncio.Event()
    dues: list[Due] = []

    def on_due(due: Due) -> None:
        dues.append(due)
        announced.set()

    s = Scheduler(site, ops, on_due, [x for x in schedules if x.id == "pump-service"], interval=3600)
    task = asyncio.create_task(s.run())
    try:
        s.handle(run_hours(100))
        s.handle(run_hours(600))
        await asyncio.wait_for(announced.wait(), 10)
    finally:
        task.cancel()
    assert [(d.schedule.id, d.device_id) for d in dues] == [("pump-service", "pump-1")]
