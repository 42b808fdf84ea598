"""One device's whole history, newest first: every entry of its alarms' and tasks' histories
(raised, acknowledged, returned to normal, shelved...; created, assigned, status moves, notes...),
when it was taken out of service and put back, and each save of its equipment record.

The device card of the desk (设备台账) pages through it. The alarm and task lists give records,
not the entries of their histories, and reading each record's history one by one would be one
round trip per alarm: so this reads the three history tables in one statement, paged in SQL.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Integer, Select, String, Subquery, cast, func, literal, null, select, union_all
from sqlalchemy.orm import InstrumentedAttribute

from facility.store.ops import OpsStore
from facility.store.tables import AlarmHistoryRow, AlarmRow, AuditRow, TaskHistoryRow, TaskRow

EntryKind = Literal["alarm", "task", "device"]
# The audit entries that are part of a device's own story: the store writes the first two itself
# (`set_out_of_service`); the last is the API's audit of a saved equipment record.
DEVICE_ACTIONS = {
    "out of service": "out of service",
    "back in service": "back in service",
    "PUT /devices/{device_id}/record": "record saved",
}


@dataclass(frozen=True)
class HistoryEntry:
    """One thing that happened to a device. `ref` is the alarm's or task's id (None for the
    device's own entries), `title` and `priority` those of that alarm or task."""

    kind: EntryKind
    ref: int | None
    ts: int  # UTC ns
    action: str
    actor: str
    detail: str
    title_zh: str
    title_en: str
    priority: str


@dataclass(frozen=True)
class HistoryPage:
    entries: list[HistoryEntry]
    total: int  # entries of the device in all


def _of_records(
    kind: EntryKind,
    record: type[AlarmRow | TaskRow],
    entry: type[AlarmHistoryRow | TaskHistoryRow],
    owner: InstrumentedAttribute[int],  # the entry's column naming its record
    device_id: str,
) -> Select[*tuple[Any, ...]]:
    """The history entries of the device's alarms or tasks, with the title of their record."""
    return (
        select(
            literal(kind, String()).label("kind"),
            record.id.label("ref"),
            entry.id.label("n"),
            entry.ts,
            entry.action,
            entry.actor,
            entry.detail,
            record.title_zh,
            record.title_en,
            record.priority,
        )
        .join(record, record.id == owner)
        .where(record.device_id == device_id)
    )


def _entries(device_id: str) -> Subquery:
    text = String()
    alarms = _of_records("alarm", AlarmRow, AlarmHistoryRow, AlarmHistoryRow.alarm_id, device_id)
    tasks = _of_records("task", TaskRow, TaskHistoryRow, TaskHistoryRow.task_id, device_id)
    own = select(
        literal("device", text),
        cast(null(), Integer),
        AuditRow.id,
        AuditRow.ts,
        AuditRow.action,
        AuditRow.actor,
        AuditRow.detail,
        literal("", text),
        literal("", text),
        literal("", text),
    ).where(AuditRow.device == device_id, AuditRow.action.in_(sorted(DEVICE_ACTIONS)), AuditRow.outcome == "ok")
    return union_all(alarms, tasks, own).subquery()


async def device_history(ops: OpsStore, device_id: str, *, limit: int = 100, offset: int = 0) -> HistoryPage:
    """A page of the device's history, newest first (entries of one moment in the order written,
    the last first), and how many entries it has in all."""
    entries = _entries(device_id)
    columns = entries.c
    query = select(entries).order_by(columns.ts.desc(), columns.kind, columns.n.desc()).limit(limit).offset(offset)
    async with ops.sessions() as s:
        total = (await s.execute(select(func.count()).select_from(entries))).scalar_one()
        rows = (await s.execute(query)).all()
    return HistoryPage(
        [
            HistoryEntry(
                kind=row.kind,
                ref=row.ref,
                ts=row.ts,
                action=DEVICE_ACTIONS.get(row.action, row.action) if row.kind == "device" else row.action,
                actor=row.actor,
                detail=_reason(row.detail) if row.kind == "device" else row.detail,
                title_zh=row.title_zh,
                title_en=row.title_en,
                priority=row.priority,
            )
            for row in rows
        ],
        total,
    )


def _reason(detail: str) -> str:
    """Why a device was taken out of service, from its audit entry's detail (JSON); other entries
    of the device itself have none to show."""
    try:
        found = json.loads(detail)
    except ValueError:
        return ""
    reason = found.get("reason") if isinstance(found, dict) else None
    return reason if isinstance(reason, str) else ""
