"""Tasks as reports list them, and where a task stood at a past time (from its timestamps, so that a
report on an earlier day says what was true then, not what is true now)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import raiseload

from facility.store.tasks import Bilingual, TaskRow, board_order
from reports.model import Column, Row, text
from reports.scope import Scope

COLUMNS = [
    Column("id", text("工单", "Task"), "count"),
    Column("title", text("标题", "Title")),
    Column("kind", text("类型", "Kind"), "task_kind"),
    Column("priority", text("优先级", "Priority"), "word"),
    Column("status", text("状态", "Status"), "word"),
    Column("device", text("设备", "Device")),
    Column("team", text("班组或维保单位", "Team or vendor"), "name"),
    Column("assignee", text("负责人", "Assignee"), "name"),
    Column("due", text("期限", "Due"), "time"),
]


def unfinished_at(ts: int) -> ColumnElement[bool]:
    """Tasks that existed at `ts` and were neither resolved nor closed by then."""
    return and_(
        TaskRow.created_at <= ts,
        or_(TaskRow.resolved_at.is_(None), TaskRow.resolved_at > ts),
        or_(TaskRow.closed_at.is_(None), TaskRow.closed_at > ts),
    )


async def tasks(
    s: AsyncSession,
    scope: Scope,
    *where: ColumnElement[bool],
    latest_first: bool = False,
    limit: int | None = None,
) -> Sequence[TaskRow]:
    """The tasks in view matching `where`, soonest due first (or the latest changed first, as the
    board can sort them), at most `limit` of them, without their history and checklist."""
    query = (
        select(TaskRow)
        .where(scope.tasks(), *where)
        .order_by(*board_order(latest_first))
        .limit(limit)
        .options(raiseload(TaskRow.history), raiseload(TaskRow.checklist))
    )
    return (await s.scalars(query)).all()


def task_row(scope: Scope, row: TaskRow) -> Row:
    return {
        "id": row.id,
        "title": Bilingual(row.title_zh, row.title_en),
        "kind": row.kind,
        "priority": row.priority,
        "status": row.status,
        "device": scope.name(row.device_id),
        "team": scope.vendor(row.vendor) if row.vendor else row.team,
        "assignee": row.assignee,
        "due": row.due,
    }
