"""Task queries of the reports: tasks as lines (without history and checklist), counts, repair
times, deadlines kept per team or vendor, and the tasks' history as events.

Where a task stood at a past time is read from its timestamps (`_unfinished_at`), so that a report
on an earlier day says what was true then, not what is true now.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.orm import raiseload

from facility.records import UNFINISHED, TaskKind, TaskStatus
from facility.store.reads.view import View
from facility.store.tables import ChecklistItemRow, TaskHistoryRow, TaskRow
from facility.store.task_queries import board_order, task_filters
from facility.vocabulary import Text


@dataclass(frozen=True)
class TaskLine:
    """A task as a list shows it."""

    id: int
    title: Text
    kind: str
    priority: str
    status: str
    device: str | None
    team: str | None
    vendor: str | None
    assignee: str | None
    due: int
    created_at: int


@dataclass(frozen=True)
class TaskEvent:
    """An entry of a task's history, with what its detail may name: the task's title, description
    and checklist items (by their English text)."""

    ts: int
    task: int
    title: Text
    description: Text
    device: str | None
    action: str
    actor: str | None
    detail: str
    checklist: dict[str, Text]


@dataclass(frozen=True)
class Repairs:
    """Tasks of a kind resolved in a period, and the sum of their times from creation."""

    resolved: int
    total_ns: int


@dataclass(frozen=True)
class Deadlines:
    """Tasks due in a period, and whether they were resolved by then."""

    due: int  # tasks due in the period, cancelled ones left out
    met: int  # resolved by their due time
    missed: int  # resolved late, or not resolved and past due
    pending: int  # not resolved, not due yet


def _unfinished_at(ts: int) -> ColumnElement[bool]:
    """Tasks that existed at `ts` and were neither resolved nor closed by then."""
    return and_(
        TaskRow.created_at <= ts,
        or_(TaskRow.resolved_at.is_(None), TaskRow.resolved_at > ts),
        or_(TaskRow.closed_at.is_(None), TaskRow.closed_at > ts),
    )


def _line(row: TaskRow) -> TaskLine:
    return TaskLine(
        row.id,
        Text(row.title_zh, row.title_en),
        row.kind,
        row.priority,
        row.status,
        row.device_id,
        row.team,
        row.vendor,
        row.assignee,
        row.due,
        row.created_at,
    )


async def _lines(
    view: View, *where: ColumnElement[bool], latest_first: bool = False, limit: int | None = None
) -> list[TaskLine]:
    """The tasks in view matching `where`, soonest due first (or the latest changed first, as the
    board can sort them), at most `limit` of them."""
    query = (
        select(TaskRow)
        .where(view.tasks(), *where)
        .order_by(*board_order(latest_first))
        .limit(limit)
        .options(raiseload(TaskRow.history), raiseload(TaskRow.checklist))
    )
    return [_line(row) for row in (await view.session.scalars(query)).all()]


async def _count(view: View, *where: ColumnElement[bool]) -> int:
    """How many tasks in view match `where`."""
    query = select(func.count()).select_from(TaskRow).where(view.tasks(), *where)
    return int((await view.session.execute(query)).scalar_one())


async def created(view: View, start: int, end: int) -> list[TaskLine]:
    """The tasks created in [start, end)."""
    return await _lines(view, TaskRow.created_at >= start, TaskRow.created_at < end)


async def resolved(view: View, start: int, end: int) -> int:
    """How many tasks were resolved in [start, end)."""
    return await _count(view, TaskRow.resolved_at >= start, TaskRow.resolved_at < end)


async def closed(view: View, start: int, end: int) -> int:
    """How many tasks were closed (verified or cancelled) in [start, end)."""
    return await _count(view, TaskRow.closed_at >= start, TaskRow.closed_at < end)


async def overdue_at(view: View, ts: int) -> list[TaskLine]:
    """The tasks unfinished at `ts` and due before it."""
    return await _lines(view, _unfinished_at(ts), TaskRow.due < ts)


async def due_between(view: View, ts: int, start: int, end: int) -> list[TaskLine]:
    """The tasks unfinished at `ts` and due in [start, end)."""
    return await _lines(view, _unfinished_at(ts), TaskRow.due >= start, TaskRow.due < end)


async def unfinished(view: View) -> list[TaskLine]:
    """The tasks not finished now (open, assigned or in progress)."""
    return await _lines(view, TaskRow.status.in_([u.value for u in UNFINISHED]))


async def board(
    view: View,
    now: int,
    *,
    status: tuple[TaskStatus, ...] = (),
    kind: TaskKind | None = None,
    team: str | None = None,
    vendor: str | None = None,
    overdue: bool | None = None,
    latest_first: bool = False,
    limit: int | None = None,
) -> tuple[list[TaskLine], int]:
    """The tasks the task board's filters match (overdue judged at `now`), in the board's order, at
    most `limit` of them; and how many match. The filters are the task store's, so that a list file
    and the board cannot disagree about what matches."""
    where = task_filters(now, devices=None, status=status, kind=kind, team=team, vendor=vendor, overdue=overdue)
    total = await _count(view, *where)  # the view holds the device limit
    return await _lines(view, *where, latest_first=latest_first, limit=limit), total


async def repair_times(view: View, start: int, end: int) -> dict[str, Repairs]:
    """Per task kind: the tasks resolved in [start, end) and the sum of their times from creation."""
    query = (
        select(TaskRow.kind, func.count(), func.sum(TaskRow.resolved_at - TaskRow.created_at))
        .where(TaskRow.resolved_at >= start, TaskRow.resolved_at < end, view.tasks())
        .group_by(TaskRow.kind)
    )
    return {k: Repairs(int(n), int(t or 0)) for k, n, t in (await view.session.execute(query)).all()}


async def deadlines(view: View, by: Literal["team", "vendor"], start: int, end: int, now: int) -> dict[str, Deadlines]:
    """Per team or vendor: the tasks due in [start, end) and whether they were resolved by then,
    judged at `now`."""
    column: Any = TaskRow.team if by == "team" else TaskRow.vendor
    met = and_(TaskRow.resolved_at.is_not(None), TaskRow.resolved_at <= TaskRow.due)
    missed = or_(TaskRow.resolved_at > TaskRow.due, and_(TaskRow.resolved_at.is_(None), TaskRow.due < now))
    query = (
        select(column, func.count(), func.sum(case((met, 1), else_=0)), func.sum(case((missed, 1), else_=0)))
        .where(
            TaskRow.due >= start,
            TaskRow.due < end,
            TaskRow.status != TaskStatus.CANCELLED.value,
            column.is_not(None),
            view.tasks(),
        )
        .group_by(column)
        .order_by(column)
    )
    found = (await view.session.execute(query)).all()
    return {k: Deadlines(int(n), int(m), int(x), int(n) - int(m) - int(x)) for k, n, m, x in found}


async def events(view: View, since: int, now: int) -> list[TaskEvent]:
    """The tasks' history entries in [since, now], in order."""
    query = (
        select(TaskHistoryRow, TaskRow)
        .join(TaskRow, TaskRow.id == TaskHistoryRow.task_id)
        .where(TaskHistoryRow.ts >= since, TaskHistoryRow.ts <= now, view.tasks())
        .order_by(TaskHistoryRow.ts, TaskHistoryRow.id)
    )
    found = (await view.session.execute(query)).all()
    items = select(ChecklistItemRow).where(ChecklistItemRow.task_id.in_({t.id for _, t in found}))
    checklists: dict[int, dict[str, Text]] = {}
    for item in (await view.session.scalars(items)).all():
        checklists.setdefault(item.task_id, {})[item.text_en] = Text(item.text_zh, item.text_en)
    return [
        TaskEvent(
            h.ts,
            t.id,
            Text(t.title_zh, t.title_en),
            Text(t.description_zh, t.description_en),
            t.device_id,
            h.action,
            h.actor,
            h.detail,
            checklists.get(t.id, {}),
        )
        for h, t in found
    ]
