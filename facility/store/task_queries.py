"""The task board's filters and orders, and the vendor response figures, as SQL over the task table:
shared by the board (TaskStore.list and count), its export and the read side of the reports, so
that a file or report holds the tasks the board shows.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from sqlalchemy import ColumnElement, and_, not_, or_

from facility.records import UNFINISHED, TaskKind, TaskStatus, VendorSla
from facility.store.tables import TaskRow


def task_filters(
    now: int,
    status: Iterable[TaskStatus],
    kind: TaskKind | None,
    team: str | None,
    vendor: str | None,
    overdue: bool | None,
    devices: Collection[str] | None,
) -> list[ColumnElement[bool]]:
    """The conditions of the task board's filters (each None or empty: any), for `list`, `count`
    and the board's export (reports.lists), so that the file holds the tasks the board shows."""
    where: list[ColumnElement[bool]] = []
    if statuses := [s.value for s in status]:
        where.append(TaskRow.status.in_(statuses))
    if kind is not None:
        where.append(TaskRow.kind == kind.value)
    if team is not None:
        where.append(TaskRow.team == team)
    if vendor is not None:
        where.append(TaskRow.vendor == vendor)
    if overdue is not None:
        late = and_(TaskRow.status.in_([s.value for s in UNFINISHED]), TaskRow.due < now)
        where.append(late if overdue else not_(late))
    if devices is not None:
        where.append(of_devices(devices))
    return where


def board_order(latest_first: bool) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    """The soonest due first, or the latest changed first."""
    if latest_first:
        return TaskRow.changed_at.desc(), TaskRow.id.desc()
    return TaskRow.due.asc(), TaskRow.id.asc()


def of_devices(devices: Collection[str]) -> ColumnElement[bool]:
    """The tasks of those devices, and the site-wide ones (no device, such as a complaint)."""
    return or_(TaskRow.device_id.is_(None), TaskRow.device_id.in_(sorted(devices)))


def sla_of(vendor: str, limit: int, tasks: list[tuple[int, int | None]], now: int) -> VendorSla:
    """How `vendor` answered `tasks` ((created, arrived) each) against `limit`, judged at `now`."""
    responses = [arrived - created for created, arrived in tasks if arrived is not None]
    unanswered = [created for created, arrived in tasks if arrived is None]
    past = sum(1 for created in unanswered if now - created > limit)
    return VendorSla(
        vendor=vendor,
        limit_ns=limit,
        tasks=len(tasks),
        met=sum(1 for r in responses if r <= limit),
        missed=sum(1 for r in responses if r > limit),
        open_past_limit=past,
        waiting=len(unanswered) - past,
        mean_response_ns=sum(responses) // len(responses) if responses else None,
        worst_response_ns=max(responses, default=None),
    )
