"""The morning briefing (晨会简报): what happened since the last one, and what today starts with.

By default it runs from yesterday's morning meeting (08:00 local, `periods.BRIEFING_AT`) up to
now, so that the briefing read at this morning's meeting holds last night: a calendar day would
leave out the small hours just before the meeting, when the alarms that matter most at the meeting
happen. Asked for a day, it covers that local calendar day, and what stands (overdue tasks, devices
offline or out of service) is judged "as of" the end of the following day (or now, if sooner), so
that one reprinted later shows the state of that morning; today's rounds and due tasks are then
those of the following day.

The rules and schedules are the caller's (the running service passes its own, which stay good
while a file being edited is not); the records come from facility.store.reads, and this module
lays them out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from facility.model import now_ns
from facility.site import Site
from facility.store.ops import OpsStore
from facility.store.reads import alarms, tasks
from facility.store.reads import devices as device_reads
from facility.store.reads.alarms import Emergency, Outage
from facility.store.reads.devices import OutOfService
from facility.store.reads.tasks import TaskLine
from facility.store.reads.view import open_view
from facility.vocabulary import Text
from reports import alarm_load
from reports.communication import Watching, communication_rules
from reports.model import Column, Figure, Report, Row, Section, text
from reports.periods import day_bounds, local_date, since_last_briefing
from reports.rounds import Planned, rounds, rounds_section
from reports.scope import Scope
from reports.task_lists import COLUMNS, task_row


@dataclass(frozen=True)
class _Found:
    """What the briefing reads from the store."""

    counts: dict[tuple[str, str], int]
    emergencies: list[Emergency]
    opened: list[TaskLine]
    resolved: int
    closed: int
    overdue: list[TaskLine]
    due_today: list[TaskLine]
    offline: dict[str, Outage]
    out_of_service: list[OutOfService]


async def briefing(
    site: Site,
    ops: OpsStore,
    day: date | None,
    devices: Iterable[str] | None = None,
    *,
    now: int | None = None,
    rules: Iterable[Watching],
    schedules: Iterable[Planned],
) -> Report:
    """The briefing on `day` (local), or since yesterday's morning meeting up to `now` when `day` is
    None; `rules` say which devices are offline, `schedules` what rounds today plans."""
    scope = Scope(site, devices)
    now = now_ns() if now is None else now
    if day is None:
        start, end = since_last_briefing(now, scope.zone), now
        today = local_date(now, scope.zone)
    else:
        start, end = day_bounds(day, scope.zone)
        today = day + timedelta(days=1)
    next_start, next_end = day_bounds(today, scope.zone)
    as_of = min(now, next_end)
    comm = communication_rules(rules)
    async with open_view(ops, scope.limit) as view:
        found = _Found(
            counts=await alarms.by_device_and_priority(view, start, end),
            emergencies=await alarms.emergencies(view, start, end),
            opened=await tasks.created(view, start, end),
            resolved=await tasks.resolved(view, start, end),
            closed=await tasks.closed(view, start, end),
            overdue=await tasks.overdue_at(view, as_of),
            due_today=await tasks.due_between(view, as_of, next_start, next_end),
            offline=await alarms.offline_at(view, comm, as_of),
            out_of_service=await device_reads.out_of_service(view, as_of),
        )
    planned = rounds(scope, schedules, next_start, next_end)
    shown = today if day is None else day
    report = scope.report("briefing", text(f"晨会简报 {shown}", f"Morning briefing {shown}"), start, end, now)
    report.sections += [
        _summary(found, len(planned), as_of),
        alarm_load.by_system(scope, found.counts),
        _emergencies(scope, found.emergencies),
        _task_section("tasks_opened", text("新建工单", "Tasks opened"), scope, found.opened),
        _task_section("tasks_overdue", text("超期未完成工单", "Overdue tasks, not finished"), scope, found.overdue),
        _offline(scope, found.offline),
        _out_of_service(scope, found.out_of_service),
        rounds_section(planned),
        _task_section("due_today", text("今日到期工单", "Tasks due today"), scope, found.due_today),
    ]
    return report


def _summary(found: _Found, rounds_today: int, as_of: int) -> Section:
    return Section(
        "summary",
        text("概要", "Summary"),
        figures=[
            Figure("alarms", text("报警次数", "Alarms raised"), sum(found.counts.values())),
            Figure("emergencies", text("紧急报警", "Emergency alarms"), len(found.emergencies)),
            Figure("tasks_opened", text("新建工单", "Tasks opened"), len(found.opened)),
            Figure("tasks_resolved", text("解决工单", "Tasks resolved"), found.resolved),
            Figure(
                "tasks_closed", text("关闭工单（验收或取消）", "Tasks closed (verified or cancelled)"), found.closed
            ),
            Figure("tasks_overdue", text("超期工单", "Tasks overdue"), len(found.overdue)),
            Figure("devices_offline", text("通讯中断设备", "Devices offline"), len(found.offline)),
            Figure("out_of_service", text("停用检修设备", "Devices out of service"), len(found.out_of_service)),
            Figure("rounds_today", text("今日计划巡检保养", "Rounds and maintenance today"), rounds_today),
            Figure("due_today", text("今日到期工单", "Tasks due today"), len(found.due_today)),
            Figure("as_of", text("状态截至", "State as of"), as_of, "time"),
        ],
    )


def _task_section(key: str, title: Text, scope: Scope, found: Iterable[TaskLine]) -> Section:
    return Section(key, title, columns=COLUMNS, rows=[task_row(scope, t) for t in found])


def _emergencies(scope: Scope, found: list[Emergency]) -> Section:
    rows: list[Row] = [
        {
            "alarm": e.alarm,
            "raised_at": e.first,
            "activations": e.times,
            "device": scope.name(e.device),
            "building": scope.building(e.device),
            "title": e.title,
            "acked_at": e.acked_at,
            "acked_by": e.acked_by,
            "cleared_at": e.cleared_at,
            "state": e.state,
        }
        for e in found
    ]
    return Section(
        "emergencies",
        text("紧急报警", "Emergency alarms"),
        columns=[
            Column("alarm", text("报警", "Alarm"), "count"),
            Column("raised_at", text("首次报警", "First raised"), "time"),
            Column("activations", text("次数", "Times"), "count"),
            Column("device", text("设备", "Device")),
            Column("building", text("楼栋", "Building")),
            Column("title", text("内容", "Title")),
            Column("acked_at", text("确认时间", "Acknowledged"), "time"),
            Column("acked_by", text("确认人", "By"), "name"),
            Column("cleared_at", text("恢复时间", "Cleared"), "time"),
            Column("state", text("当前状态", "State now"), "word"),
        ],
        rows=rows,
    )


def _offline(scope: Scope, offline: dict[str, Outage]) -> Section:
    return Section(
        "devices_offline",
        text("通讯中断设备", "Devices offline"),
        columns=[
            Column("device", text("设备", "Device")),
            Column("building", text("楼栋", "Building")),
            Column("system", text("系统", "System"), "word"),
            Column("since", text("中断起始", "Offline since"), "time"),
            Column("alarm", text("报警", "Alarm"), "count"),
        ],
        rows=[
            {
                "device": scope.name(o.device),
                "building": scope.building(o.device),
                "system": scope.system(o.device),
                "since": o.start,
                "alarm": o.alarm_id,
            }
            for o in sorted(offline.values(), key=lambda o: (o.start, o.device))
        ],
        note=text(
            "通讯类规则（条件含 offline()）的报警仍在报警中的设备",
            "Devices with an active alarm of a communication rule (a condition calling offline())",
        ),
    )


def _out_of_service(scope: Scope, found: list[OutOfService]) -> Section:
    return Section(
        "out_of_service",
        text("停用检修设备", "Devices out of service"),
        columns=[
            Column("device", text("设备", "Device")),
            Column("building", text("楼栋", "Building")),
            Column("since", text("起始", "Since"), "time"),
            Column("by", text("操作人", "By"), "name"),
            Column("reason", text("原因", "Reason")),
        ],
        rows=[
            {
                "device": scope.name(o.device),
                "building": scope.building(o.device),
                "since": o.since,
                "by": o.by,
                "reason": o.reason,
            }
            for o in found
        ],
    )
