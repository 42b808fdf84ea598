"""How many alarms went off, counted in SQL from the alarms' history: an activation is each time an
alarm went active (raised, or raised again after returning to normal), which is what reached duty
staff. Suppressed-by-design activations are counted too: the history does not tell them apart."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from facility.model import Priority
from facility.store.ops import ACTIVATIONS, AlarmHistoryRow, AlarmRow
from facility.store.tasks import Bilingual
from reports.model import Chart, Column, Row, Section, text
from reports.scope import Scope

PRIORITIES = [p.value for p in Priority]
WINDOW_NS = 600 * 1_000_000_000  # ISA-18.2 and EEMUA 191 judge alarm rates per 10 minutes


def _activations(scope: Scope, start: int, end: int) -> list[ColumnElement[bool]]:
    return [
        AlarmHistoryRow.action.in_(sorted(ACTIVATIONS)),
        AlarmHistoryRow.ts >= start,
        AlarmHistoryRow.ts < end,
        scope.on_devices(AlarmRow.device_id),
    ]


async def by_device_and_priority(s: AsyncSession, scope: Scope, start: int, end: int) -> dict[tuple[str, str], int]:
    """Activations in [start, end) per (device, priority)."""
    query = (
        select(AlarmRow.device_id, AlarmRow.priority, func.count())
        .select_from(AlarmHistoryRow)
        .join(AlarmRow, AlarmRow.id == AlarmHistoryRow.alarm_id)
        .where(*_activations(scope, start, end))
        .group_by(AlarmRow.device_id, AlarmRow.priority)
    )
    return {(device, priority): n for device, priority, n in (await s.execute(query)).all()}


def by_system(scope: Scope, counts: dict[tuple[str, str], int]) -> Section:
    """Activations per system (every system in view, with none too) and priority, as a stacked chart."""
    table: dict[str, Counter[str]] = {system: Counter() for system in scope.systems()}
    for (device, priority), n in counts.items():
        table.setdefault(scope.system(device), Counter())[priority] += n
    rows: list[Row] = [
        {"system": system, **{p: found[p] for p in PRIORITIES}, "total": sum(found.values())}
        for system, found in sorted(table.items())
    ]
    return Section(
        key="alarms_by_system",
        title=text("各系统报警（按优先级）", "Alarms by system and priority"),
        columns=[
            Column("system", text("系统", "System"), "word"),
            *(Column(p, text(*_PRIORITY_NAMES[p]), "count") for p in PRIORITIES),
            Column("total", text("合计", "Total"), "count"),
        ],
        rows=rows,
        chart=Chart("system", tuple(PRIORITIES), text("各系统报警次数", "Alarms per system")),
    )


_PRIORITY_NAMES = {
    "emergency": ("紧急", "Emergency"),
    "high": ("高", "High"),
    "medium": ("中", "Medium"),
    "low": ("低", "Low"),
}


async def per_window(s: AsyncSession, scope: Scope, start: int, end: int) -> dict[int, int]:
    """Activations in each 10-minute window from `start` (window k covers start + k*10 min), the
    empty windows left out."""
    window = ((AlarmHistoryRow.ts - start) // WINDOW_NS).label("window")
    query = (
        select(window, func.count())
        .select_from(AlarmHistoryRow)
        .join(AlarmRow, AlarmRow.id == AlarmHistoryRow.alarm_id)
        .where(*_activations(scope, start, end))
        .group_by(window)
    )
    return {int(k): n for k, n in (await s.execute(query)).all()}


@dataclass(frozen=True)
class Frequent:
    rule: str
    device: str
    title: Bilingual
    activations: int
    flagged: bool  # the store called it chattering at least once in the period


async def most_frequent(s: AsyncSession, scope: Scope, start: int, end: int, limit: int = 10) -> list[Frequent]:
    """The (rule, device) pairs that went active most often in [start, end)."""
    is_activation = AlarmHistoryRow.action.in_(sorted(ACTIVATIONS))
    activations = func.sum(case((is_activation, 1), else_=0))
    flagged = func.sum(case((AlarmHistoryRow.action == "chattering", 1), else_=0))
    query = (
        select(
            AlarmRow.rule_id,
            AlarmRow.device_id,
            func.max(AlarmRow.title_zh),
            func.max(AlarmRow.title_en),
            activations,
            flagged,
        )
        .select_from(AlarmHistoryRow)
        .join(AlarmRow, AlarmRow.id == AlarmHistoryRow.alarm_id)
        .where(
            AlarmHistoryRow.action.in_([*sorted(ACTIVATIONS), "chattering"]),
            AlarmHistoryRow.ts >= start,
            AlarmHistoryRow.ts < end,
            scope.on_devices(AlarmRow.device_id),
        )
        .group_by(AlarmRow.rule_id, AlarmRow.device_id)
        .having(activations > 0)
        .order_by(activations.desc(), AlarmRow.rule_id, AlarmRow.device_id)
        .limit(limit)
    )
    rows = (await s.execute(query)).all()
    return [Frequent(r, d, Bilingual(zh or "", en or ""), int(n), bool(f)) for r, d, zh, en, n, f in rows]
