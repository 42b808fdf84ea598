"""The shift handover: what happened since the shift began, and what the next shift takes over.

Shifts start at 08:00 and 20:00 local time unless `since` says otherwise. Events are read from the
histories of alarms and tasks and from the plan steps done; what is still open is read as it is now.
The records come from facility.store.reads; this module lays them out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from facility.errors import Invalid
from facility.site import Site
from facility.store.ops import OpsStore
from facility.store.reads import alarms, plans, tasks
from facility.store.reads.alarms import AlarmEvent, OpenAlarm
from facility.store.reads.plans import OpenPlan, StepDone
from facility.store.reads.tasks import TaskEvent, TaskLine
from facility.store.reads.view import open_view
from facility.vocabulary import ACTIVATIONS, AlarmAction
from reports.history import alarm_detail, task_detail
from reports.model import Column, Figure, Report, Row, Section, text
from reports.periods import shift_start
from reports.scope import Scope
from reports.task_lists import COLUMNS, task_row
from reports.values import local_time

_NOTE = "note"  # a task history's note: what people wrote, shown with the alarms' comments


@dataclass(frozen=True)
class _Found:
    """What the handover reads from the store, the events laid out as rows."""

    alarm_events: list[Row]
    task_events: list[Row]
    steps: list[StepDone]
    plans_opened: int
    open_alarms: list[OpenAlarm]
    unfinished: list[TaskLine]
    open_plans: list[OpenPlan]


async def handover(
    site: Site,
    ops: OpsStore,
    since_ns: int | None,
    now_ns: int,
    devices: Iterable[str] | None = None,
) -> Report:
    """The handover for [since, now]; `since` None: the start of the shift under way at `now`.
    Invalid (naming `since`) when it is after `now`."""
    scope = Scope(site, devices)
    now = now_ns
    since = shift_start(now, scope.zone) if since_ns is None else since_ns
    if since > now:
        raise Invalid(
            f"since: {_local(since, scope)} is after now ({_local(now, scope)})", field="since", where="query"
        )
    title = text(f"交接班报告 {_local(since, scope)} 起", f"Shift handover since {_local(since, scope)}")
    report = scope.report("handover", title, since, now, now)
    async with open_view(ops, scope.limit) as view:
        found = _Found(
            alarm_events=[_alarm_event(scope, e) for e in await alarms.events(view, since, now)],
            task_events=[_task_event(scope, e) for e in await tasks.events(view, since, now)],
            steps=await plans.steps_done(view, since, now),
            plans_opened=await plans.opened(view, since, now),
            open_alarms=await alarms.open_alarms(view),
            unfinished=await tasks.unfinished(view),
            open_plans=await plans.still_open(view, now),
        )
    comments = sorted(
        [{**e, "on": "alarm", "ref": e["alarm"]} for e in found.alarm_events if e["action"] == AlarmAction.COMMENT]
        + [{**e, "on": "task", "ref": e["task"]} for e in found.task_events if e["action"] == _NOTE],
        key=_ts,
    )
    alarm_events = [e for e in found.alarm_events if e["action"] != AlarmAction.COMMENT]
    task_events = [e for e in found.task_events if e["action"] != _NOTE]
    report.sections += [
        _summary(found, alarm_events, len(task_events), len(comments)),
        _alarm_events(alarm_events),
        _task_events(task_events),
        _steps(scope, found.steps),
        _comments(comments),
        _open_alarms(scope, found.open_alarms),
        Section(
            "unfinished_tasks",
            text("未完成工单", "Tasks not finished"),
            columns=[*COLUMNS, Column("overdue", text("超期", "Overdue"), "flag")],
            rows=[{**task_row(scope, t), "overdue": t.due < now} for t in found.unfinished],
        ),
        _open_plans(scope, found.open_plans),
    ]
    return report


def _ts(row: Row) -> int:
    ts = row["ts"]
    assert isinstance(ts, int)
    return ts


def _local(ts: int, scope: Scope) -> str:
    return local_time(ts, scope.zone)


def _alarm_event(scope: Scope, e: AlarmEvent) -> Row:
    return {
        "ts": e.ts,
        "alarm": e.alarm,
        "priority": e.priority,
        "device": scope.name(e.device),
        "title": e.title,
        "action": e.action,
        "actor": e.actor,
        "detail": alarm_detail(e.action, e.detail, e.message, scope.zone),
    }


def _task_event(scope: Scope, e: TaskEvent) -> Row:
    return {
        "ts": e.ts,
        "task": e.task,
        "title": e.title,
        "device": scope.name(e.device),
        "action": e.action,
        "actor": e.actor,
        "detail": task_detail(e.action, e.detail, e.title, e.description, e.checklist),
    }


def _summary(found: _Found, alarm_events: list[Row], task_changes: int, comments: int) -> Section:
    def actions(*names: str) -> int:
        return sum(1 for e in alarm_events if e["action"] in names)

    return Section(
        "summary",
        text("概要", "Summary"),
        figures=[
            Figure("alarms_raised", text("报警", "Alarms raised"), actions(*ACTIVATIONS)),
            Figure("alarms_acknowledged", text("确认", "Alarms acknowledged"), actions(AlarmAction.ACKNOWLEDGED)),
            Figure("alarms_cleared", text("已恢复", "Alarms cleared"), actions(AlarmAction.RETURNED_TO_NORMAL)),
            Figure("task_changes", text("工单变动", "Task changes"), task_changes),
            Figure("plans_opened", text("启动预案", "Plans opened"), found.plans_opened),
            Figure("plan_steps", text("完成预案步骤", "Plan steps done"), len(found.steps)),
            Figure("comments", text("备注与记录", "Comments and notes"), comments),
            Figure("open_alarms", text("当前报警", "Alarms still open"), len(found.open_alarms)),
            Figure("unfinished_tasks", text("未完成工单", "Tasks not finished"), len(found.unfinished)),
            Figure("open_plans", text("进行中预案", "Plans still open"), len(found.open_plans)),
        ],
    )


def _alarm_events(rows: list[Row]) -> Section:
    return Section(
        "alarm_events",
        text("报警动态", "Alarm events"),
        columns=[
            Column("ts", text("时间", "Time"), "time"),
            Column("alarm", text("报警", "Alarm"), "count"),
            Column("priority", text("优先级", "Priority"), "word"),
            Column("device", text("设备", "Device")),
            Column("title", text("内容", "Title")),
            Column("action", text("动作", "Event"), "action"),
            Column("actor", text("操作人", "By"), "name"),
            Column("detail", text("说明", "Detail")),
        ],
        rows=rows,
    )


def _task_events(rows: list[Row]) -> Section:
    return Section(
        "task_events",
        text("工单动态", "Task changes"),
        columns=[
            Column("ts", text("时间", "Time"), "time"),
            Column("task", text("工单", "Task"), "count"),
            Column("title", text("标题", "Title")),
            Column("device", text("设备", "Device")),
            Column("action", text("动作", "Change"), "action"),
            Column("actor", text("操作人", "By"), "name"),
            Column("detail", text("说明", "Detail")),
        ],
        rows=rows,
    )


def _steps(scope: Scope, steps: list[StepDone]) -> Section:
    return Section(
        "plan_steps",
        text("预案步骤", "Plan steps done"),
        columns=[
            Column("ts", text("时间", "Time"), "time"),
            Column("plan", text("预案", "Plan"), "count"),
            Column("title", text("预案名称", "Plan title")),
            Column("device", text("设备", "Device")),
            Column("step", text("步骤", "Step")),
            Column("by", text("执行人", "By"), "name"),
            Column("late", text("超时", "Late"), "flag"),
            Column("note", text("备注", "Note")),
        ],
        rows=[
            {
                "ts": s.ts,
                "plan": s.plan,
                "title": s.title,
                "device": scope.name(s.device),
                "step": s.step,
                "by": s.by,
                "late": s.late,
                "note": s.note,
            }
            for s in steps
        ],
    )


def _comments(comments: list[Row]) -> Section:
    return Section(
        "comments",
        text("备注与记录", "Comments and notes"),
        columns=[
            Column("ts", text("时间", "Time"), "time"),
            Column("on", text("对象", "On"), "word"),
            Column("ref", text("编号", "No."), "count"),
            Column("title", text("标题", "Title")),
            Column("device", text("设备", "Device")),
            Column("actor", text("填写人", "By"), "name"),
            Column("detail", text("内容", "Text")),
        ],
        rows=[{c: e.get(c) for c in ("ts", "on", "ref", "title", "device", "actor", "detail")} for e in comments],
    )


def _open_alarms(scope: Scope, found: list[OpenAlarm]) -> Section:
    return Section(
        "open_alarms",
        text("当前报警", "Alarms still open"),
        columns=[
            Column("alarm", text("报警", "Alarm"), "count"),
            Column("priority", text("优先级", "Priority"), "word"),
            Column("state", text("状态", "State"), "word"),
            Column("activated_at", text("报警时间", "Active since"), "time"),
            Column("device", text("设备", "Device")),
            Column("building", text("楼栋", "Building")),
            Column("title", text("内容", "Title")),
            Column("acked_by", text("确认人", "Acknowledged by"), "name"),
        ],
        rows=[
            {
                "alarm": a.alarm,
                "priority": a.priority,
                "state": a.state,
                "activated_at": a.activated_at,
                "device": scope.name(a.device),
                "building": scope.building(a.device),
                "title": a.title,
                "acked_by": a.acked_by,
            }
            for a in found
        ],
    )


def _open_plans(scope: Scope, found: list[OpenPlan]) -> Section:
    return Section(
        "open_plans",
        text("进行中预案", "Plans still open"),
        columns=[
            Column("plan", text("预案", "Plan"), "count"),
            Column("title", text("预案名称", "Plan title")),
            Column("device", text("设备", "Device")),
            Column("opened_at", text("启动时间", "Opened"), "time"),
            Column("done", text("已完成步骤", "Steps done"), "count"),
            Column("steps", text("步骤总数", "Steps"), "count"),
            Column("overdue", text("超时未完成步骤", "Steps overdue"), "count"),
        ],
        rows=[
            {
                "plan": p.plan,
                "title": p.title,
                "device": scope.name(p.device),
                "opened_at": p.opened_at,
                "done": p.done,
                "steps": p.steps,
                "overdue": p.overdue,
            }
            for p in found
        ],
    )
