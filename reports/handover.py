"""The shift handover: what happened since the shift began, and what the next shift takes over.

Shifts start at 08:00 and 20:00 local time unless `since` says otherwise. Events are read from the
histories of alarms and tasks and from the plan steps done; what is still open is read as it is now.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import case, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from facility.site import Site
from facility.store.ops import ACTIVATIONS, AlarmHistoryRow, AlarmRow, OpsStore
from facility.store.plans import PlanInstanceRow, PlanStepRow
from facility.store.tasks import UNFINISHED, Bilingual, ChecklistItemRow, TaskHistoryRow, TaskRow
from reports.history import alarm_detail, task_detail
from reports.model import Column, Figure, Report, Row, Section, text
from reports.periods import shift_start
from reports.scope import Scope
from reports.task_lists import COLUMNS, task_row, tasks
from reports.values import local_time

PRIORITY_RANK = case({"emergency": 0, "high": 1, "medium": 2, "low": 3}, value=AlarmRow.priority, else_=4)


async def handover(
    site: Site,
    ops: OpsStore,
    since_ns: int | None,
    now_ns: int,
    devices: Iterable[str] | None = None,
) -> Report:
    """The handover for [since, now]; `since` None: the start of the shift under way at `now`.
    ValueError (naming `since`) when it is after `now`."""
    scope = Scope(site, devices)
    now = now_ns
    since = shift_start(now, scope.zone) if since_ns is None else since_ns
    if since > now:
        raise ValueError(f"since: {_local(since, scope)} is after now ({_local(now, scope)})")
    title = text(f"交接班报告 {_local(since, scope)} 起", f"Shift handover since {_local(since, scope)}")
    report = scope.report("handover", title, since, now, now)
    async with ops.sessions() as s:
        alarm_events = await _alarm_events(s, scope, since, now)
        task_events = await _task_events(s, scope, since, now)
        steps = await _steps(s, scope, since, now)
        plans_opened = await _plans_opened(s, scope, since, now)
        open_alarms = await _open_alarms(s, scope)
        unfinished = await tasks(s, scope, TaskRow.status.in_([u.value for u in UNFINISHED]))
        open_plans = await _open_plans(s, scope, now)

    def actions(events: list[Row], *names: str) -> int:
        return sum(1 for e in events if e["action"] in names)

    comments = sorted(
        [{**e, "on": "alarm", "ref": e["alarm"]} for e in alarm_events if e["action"] == "comment"]
        + [{**e, "on": "task", "ref": e["task"]} for e in task_events if e["action"] == "note"],
        key=_ts,
    )
    alarm_events = [e for e in alarm_events if e["action"] != "comment"]
    task_events = [e for e in task_events if e["action"] != "note"]
    report.sections.append(
        Section(
            "summary",
            text("概要", "Summary"),
            figures=[
                Figure("alarms_raised", text("报警", "Alarms raised"), actions(alarm_events, *ACTIVATIONS)),
                Figure(
                    "alarms_acknowledged", text("确认", "Alarms acknowledged"), actions(alarm_events, "acknowledged")
                ),
                Figure("alarms_cleared", text("已恢复", "Alarms cleared"), actions(alarm_events, "returned to normal")),
                Figure("task_changes", text("工单变动", "Task changes"), len(task_events)),
                Figure("plans_opened", text("启动预案", "Plans opened"), plans_opened),
                Figure("plan_steps", text("完成预案步骤", "Plan steps done"), len(steps)),
                Figure("comments", text("备注与记录", "Comments and notes"), len(comments)),
                Figure("open_alarms", text("当前报警", "Alarms still open"), len(open_alarms)),
                Figure("unfinished_tasks", text("未完成工单", "Tasks not finished"), len(unfinished)),
                Figure("open_plans", text("进行中预案", "Plans still open"), len(open_plans)),
            ],
        )
    )
    report.sections.append(
        Section(
            "alarm_events",
            text("报警动态", "Alarm events"),
            columns=[
                Column("ts", text("时间", "Time"), "time"),
                Column("alarm", text("报警", "Alarm"), "count"),
                Column("priority", text("优先级", "Priority"), "word"),
                Column("device", text("设备", "Device")),
                Column("title", text("内容", "Title")),
                Column("action", text("动作", "Event"), "word"),
                Column("actor", text("操作人", "By"), "name"),
                Column("detail", text("说明", "Detail")),
            ],
            rows=alarm_events,
        )
    )
    report.sections.append(
        Section(
            "task_events",
            text("工单动态", "Task changes"),
            columns=[
                Column("ts", text("时间", "Time"), "time"),
                Column("task", text("工单", "Task"), "count"),
                Column("title", text("标题", "Title")),
                Column("device", text("设备", "Device")),
                Column("action", text("动作", "Change"), "word"),
                Column("actor", text("操作人", "By"), "name"),
                Column("detail", text("说明", "Detail")),
            ],
            rows=task_events,
        )
    )
    report.sections.append(
        Section(
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
            rows=steps,
        )
    )
    report.sections.append(
        Section(
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
    )
    report.sections.append(
        Section(
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
            rows=open_alarms,
        )
    )
    report.sections.append(
        Section(
            "unfinished_tasks",
            text("未完成工单", "Tasks not finished"),
            columns=[*COLUMNS, Column("overdue", text("超期", "Overdue"), "flag")],
            rows=[{**task_row(scope, r), "overdue": r.due < now} for r in unfinished],
        )
    )
    report.sections.append(
        Section(
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
            rows=open_plans,
        )
    )
    return report


def _ts(row: Row) -> int:
    ts = row["ts"]
    assert isinstance(ts, int)
    return ts


def _local(ts: int, scope: Scope) -> str:
    return local_time(ts, scope.zone)


async def _alarm_events(s: AsyncSession, scope: Scope, since: int, now: int) -> list[Row]:
    query = (
        select(AlarmHistoryRow, AlarmRow)
        .join(AlarmRow, AlarmRow.id == AlarmHistoryRow.alarm_id)
        .where(AlarmHistoryRow.ts >= since, AlarmHistoryRow.ts <= now, scope.on_devices(AlarmRow.device_id))
        .order_by(AlarmHistoryRow.ts, AlarmHistoryRow.id)
    )
    return [
        {
            "ts": h.ts,
            "alarm": a.id,
            "priority": a.priority,
            "device": scope.name(a.device_id),
            "title": Bilingual(a.title_zh, a.title_en),
            "action": h.action,
            "actor": h.actor,
            "detail": alarm_detail(h.action, h.detail, Bilingual(a.message_zh, a.message_en), scope.zone),
        }
        for h, a in (await s.execute(query)).all()
    ]


async def _task_events(s: AsyncSession, scope: Scope, since: int, now: int) -> list[Row]:
    query = (
        select(TaskHistoryRow, TaskRow)
        .join(TaskRow, TaskRow.id == TaskHistoryRow.task_id)
        .where(TaskHistoryRow.ts >= since, TaskHistoryRow.ts <= now, scope.tasks())
        .order_by(TaskHistoryRow.ts, TaskHistoryRow.id)
    )
    found = (await s.execute(query)).all()
    items = select(ChecklistItemRow).where(ChecklistItemRow.task_id.in_({t.id for _, t in found}))
    checklists: dict[int, dict[str, Bilingual]] = {}
    for item in (await s.scalars(items)).all():
        checklists.setdefault(item.task_id, {})[item.text_en] = Bilingual(item.text_zh, item.text_en)
    rows: list[Row] = []
    for h, t in found:
        title, description = Bilingual(t.title_zh, t.title_en), Bilingual(t.description_zh, t.description_en)
        detail = task_detail(h.action, h.detail, title, description, checklists.get(t.id, {}))
        row: Row = {
            "ts": h.ts,
            "task": t.id,
            "title": title,
            "device": scope.name(t.device_id),
            "action": h.action,
            "actor": h.actor,
            "detail": detail,
        }
        rows.append(row)
    return rows


async def _steps(s: AsyncSession, scope: Scope, since: int, now: int) -> list[Row]:
    query = (
        select(
            PlanStepRow,
            PlanInstanceRow.id,
            PlanInstanceRow.title_zh,
            PlanInstanceRow.title_en,
            PlanInstanceRow.device_id,
        )
        .join(PlanInstanceRow, PlanInstanceRow.id == PlanStepRow.instance_id)
        .where(PlanStepRow.done_at >= since, PlanStepRow.done_at <= now, scope.on_devices(PlanInstanceRow.device_id))
        .order_by(PlanStepRow.done_at, PlanStepRow.id)
    )
    return [
        {
            "ts": step.done_at,
            "plan": plan_id,
            "title": Bilingual(zh, en),
            "device": scope.name(device),
            "step": Bilingual(step.text_zh, step.text_en),
            "by": step.done_by,
            "late": step.done_at is not None and step.done_at > step.due_at,
            "note": step.note,
        }
        for step, plan_id, zh, en, device in (await s.execute(query)).all()
    ]


async def _plans_opened(s: AsyncSession, scope: Scope, since: int, now: int) -> int:
    query = select(PlanInstanceRow.id).where(
        PlanInstanceRow.opened_at >= since,
        PlanInstanceRow.opened_at <= now,
        scope.on_devices(PlanInstanceRow.device_id),
    )
    return len((await s.execute(query)).all())


async def _open_alarms(s: AsyncSession, scope: Scope) -> list[Row]:
    query = (
        select(AlarmRow)
        .where(AlarmRow.is_open, scope.on_devices(AlarmRow.device_id))
        .order_by(PRIORITY_RANK, AlarmRow.activated_at, AlarmRow.id)
    )
    return [
        {
            "alarm": a.id,
            "priority": a.priority,
            "state": a.state.value,
            "activated_at": a.activated_at,
            "device": scope.name(a.device_id),
            "building": scope.building(a.device_id),
            "title": Bilingual(a.title_zh, a.title_en),
            "acked_by": a.acked_by,
        }
        for a in (await s.scalars(query)).all()
    ]


async def _open_plans(s: AsyncSession, scope: Scope, now: int) -> list[Row]:
    query = (
        select(PlanInstanceRow)
        .where(PlanInstanceRow.is_open, scope.on_devices(PlanInstanceRow.device_id))
        .order_by(PlanInstanceRow.opened_at, PlanInstanceRow.id)
        .options(selectinload(PlanInstanceRow.steps))
    )
    return [
        {
            "plan": p.id,
            "title": Bilingual(p.title_zh, p.title_en),
            "device": scope.name(p.device_id),
            "opened_at": p.opened_at,
            "done": sum(1 for st in p.steps if st.done_at is not None),
            "steps": len(p.steps),
            "overdue": sum(1 for st in p.steps if st.done_at is None and now >= st.due_at),
        }
        for p in (await s.scalars(query)).all()
    ]
