"""The morning briefing (晨会简报): what happened since the last one, and what today starts with.

By default it runs from yesterday's morning meeting (08:00 local, `periods.BRIEFING_AT`) up to
now, so that the briefing read at this morning's meeting holds last night: a calendar day would
leave out the small hours just before the meeting, when the alarms that matter most at the meeting
happen. Asked for a day, it covers that local calendar day, and what stands (overdue tasks, devices
offline or out of service) is judged "as of" the end of the following day (or now, if sooner), so
that one reprinted later shows the state of that morning; today's rounds and due tasks are then
those of the following day.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date, timedelta

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from facility.model import Priority, now_ns
from facility.site import Site
from facility.store.ops import ACTIVATIONS, AlarmHistoryRow, AlarmRow, AuditRow, OpsStore
from facility.store.tasks import Bilingual, TaskRow
from reports import alarm_load
from reports.communication import communication_rules, offline_at
from reports.model import Column, Figure, Report, Row, Section, text
from reports.periods import day_bounds, local_date, since_last_briefing
from reports.scope import Scope
from reports.task_lists import COLUMNS, task_row, tasks, unfinished_at
from rules.ruleset import Rule
from rules.schedules import Schedule, load_schedules, occurrences_before

WHOLE_SITE = text("全场", "whole site")


async def briefing(
    site: Site,
    ops: OpsStore,
    day: date | None,
    devices: Iterable[str] | None = None,
    *,
    now: int | None = None,
    rules: Iterable[Rule] | None = None,
    schedules: Iterable[Schedule] | None = None,
) -> Report:
    """The briefing on `day` (local), or since yesterday's morning meeting up to `now` when `day` is
    None. `rules` and `schedules` default to the site's files as they are now; the running service
    passes its own, which stay good while a file being edited is not."""
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
    comm = communication_rules(site, rules)
    shown = today if day is None else day
    report = scope.report("briefing", text(f"晨会简报 {shown}", f"Morning briefing {shown}"), start, end, now)
    async with ops.sessions() as s:
        counts = await alarm_load.by_device_and_priority(s, scope, start, end)
        emergencies = await _emergencies(s, scope, start, end)
        opened = await tasks(s, scope, TaskRow.created_at >= start, TaskRow.created_at < end)
        resolved = await _count(s, scope, TaskRow.resolved_at >= start, TaskRow.resolved_at < end)
        closed = await _count(s, scope, TaskRow.closed_at >= start, TaskRow.closed_at < end)
        overdue = await tasks(s, scope, unfinished_at(as_of), TaskRow.due < as_of)
        due_today = await tasks(s, scope, unfinished_at(as_of), TaskRow.due >= next_start, TaskRow.due < next_end)
        offline = await offline_at(s, comm, scope, as_of)
        out_of_service = await _out_of_service(s, scope, as_of)
    rounds = _rounds(scope, load_schedules(site) if schedules is None else schedules, next_start, next_end)

    report.sections.append(
        Section(
            "summary",
            text("概要", "Summary"),
            figures=[
                Figure("alarms", text("报警次数", "Alarms raised"), sum(counts.values())),
                Figure("emergencies", text("紧急报警", "Emergency alarms"), len(emergencies)),
                Figure("tasks_opened", text("新建工单", "Tasks opened"), len(opened)),
                Figure("tasks_resolved", text("解决工单", "Tasks resolved"), resolved),
                Figure("tasks_closed", text("关闭工单（验收或取消）", "Tasks closed (verified or cancelled)"), closed),
                Figure("tasks_overdue", text("超期工单", "Tasks overdue"), len(overdue)),
                Figure("devices_offline", text("通讯中断设备", "Devices offline"), len(offline)),
                Figure("out_of_service", text("停用检修设备", "Devices out of service"), len(out_of_service)),
                Figure("rounds_today", text("今日计划巡检保养", "Rounds and maintenance today"), len(rounds)),
                Figure("due_today", text("今日到期工单", "Tasks due today"), len(due_today)),
                Figure("as_of", text("状态截至", "State as of"), as_of, "time"),
            ],
        )
    )
    report.sections.append(alarm_load.by_system(scope, counts))
    report.sections.append(
        Section(
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
            rows=emergencies,
        )
    )
    report.sections.append(_task_section("tasks_opened", text("新建工单", "Tasks opened"), scope, opened))
    overdue_title = text("超期未完成工单", "Overdue tasks, not finished")
    report.sections.append(_task_section("tasks_overdue", overdue_title, scope, overdue))
    report.sections.append(
        Section(
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
    )
    report.sections.append(
        Section(
            "out_of_service",
            text("停用检修设备", "Devices out of service"),
            columns=[
                Column("device", text("设备", "Device")),
                Column("building", text("楼栋", "Building")),
                Column("since", text("起始", "Since"), "time"),
                Column("by", text("操作人", "By"), "name"),
                Column("reason", text("原因", "Reason")),
            ],
            rows=out_of_service,
        )
    )
    report.sections.append(
        Section(
            "rounds_today",
            text("今日计划巡检与保养", "Today's rounds and preventive maintenance"),
            columns=[
                Column("at", text("计划时间", "Scheduled"), "time"),
                Column("title", text("内容", "Round")),
                Column("kind", text("类型", "Kind"), "task_kind"),
                Column("team", text("班组", "Team"), "name"),
                Column("devices", text("设备", "Devices")),
                Column("due", text("完成期限", "Due"), "time"),
            ],
            rows=rounds,
            note=text(
                "按日历的计划；按运行小时等计量的保养在读数到达时开单，无法预排",
                "Calendar schedules; maintenance by meter (run hours) opens when the meter passes its mark",
            ),
        )
    )
    report.sections.append(_task_section("due_today", text("今日到期工单", "Tasks due today"), scope, due_today))
    return report


def _task_section(key: str, title: Bilingual, scope: Scope, rows: Iterable[TaskRow]) -> Section:
    return Section(key, title, columns=COLUMNS, rows=[task_row(scope, r) for r in rows])


async def _count(s: AsyncSession, scope: Scope, *where: ColumnElement[bool]) -> int:
    query = select(func.count()).select_from(TaskRow).where(scope.tasks(), *where)
    return int((await s.execute(query)).scalar_one())


async def _emergencies(s: AsyncSession, scope: Scope, start: int, end: int) -> list[Row]:
    """Each emergency alarm that went active in [start, end): when first, how often, and where it is now."""
    day = (
        select(AlarmHistoryRow.alarm_id, func.min(AlarmHistoryRow.ts).label("first"), func.count().label("times"))
        .where(
            AlarmHistoryRow.action.in_(sorted(ACTIVATIONS)),
            AlarmHistoryRow.ts >= start,
            AlarmHistoryRow.ts < end,
        )
        .group_by(AlarmHistoryRow.alarm_id)
        .subquery()
    )
    query = (
        select(AlarmRow, day.c.first, day.c.times)
        .join(day, day.c.alarm_id == AlarmRow.id)
        .where(AlarmRow.priority == Priority.EMERGENCY.value, scope.on_devices(AlarmRow.device_id))
        .order_by(day.c.first, AlarmRow.id)
    )
    return [
        {
            "alarm": row.id,
            "raised_at": first,
            "activations": times,
            "device": scope.name(row.device_id),
            "building": scope.building(row.device_id),
            "title": Bilingual(row.title_zh, row.title_en),
            "acked_at": row.acked_at,
            "acked_by": row.acked_by,
            "cleared_at": row.cleared_at,
            "state": row.state.value,
        }
        for row, first, times in (await s.execute(query)).all()
    ]


async def _out_of_service(s: AsyncSession, scope: Scope, ts: int) -> list[Row]:
    """Devices out of service at `ts`, from the audit log (each change of it is recorded there)."""
    query = (
        select(AuditRow)
        .where(
            AuditRow.action.in_(["out of service", "back in service"]),
            AuditRow.outcome == "ok",
            AuditRow.ts <= ts,
            scope.on_devices(AuditRow.target),
        )
        .order_by(AuditRow.ts, AuditRow.id)
    )
    latest = {row.target: row for row in (await s.scalars(query)).all()}
    return [
        {
            "device": scope.name(row.target),
            "building": scope.building(row.target),
            "since": row.ts,
            "by": row.actor,
            "reason": json.loads(row.detail).get("reason", ""),
        }
        for row in sorted(latest.values(), key=lambda r: (r.ts, r.target))
        if row.action == "out of service"
    ]


def _rounds(scope: Scope, schedules: Iterable[Schedule], start: int, end: int) -> list[Row]:
    """Calendar occurrences in [start, end) of the schedules, for their targets in view."""
    rows: list[tuple[int, str, Row]] = []
    for schedule in schedules:
        spec = schedule.spec
        if spec.when.meter is not None:
            continue
        targets = [t for t in schedule.targets if scope.sees(t)]
        if not targets:
            continue
        names = WHOLE_SITE if targets == [None] else ", ".join(scope.name(t) for t in targets if t is not None)
        for at in occurrences_before(spec.when, scope.zone, end - 1):
            if at < start:
                break
            row: Row = {
                "at": at,
                "title": Bilingual(spec.title.zh, spec.title.en),
                "kind": spec.task.kind,
                "team": spec.task.team,
                "devices": names,
                "due": at + round(spec.task.sla * 1e9),
            }
            rows.append((at, schedule.id, row))
    return [row for _, _, row in sorted(rows, key=lambda r: r[:2])]
