"""Where preventive schedules stand: the last calendar occurrence handled and the meter baseline, per
(schedule, device), so that a restart neither repeats an occurrence nor forgets a counter's progress.

Its table is `facility.store.tables.ScheduleMarkRow`, part of the schema the migrations make.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from facility.store.site_scope import by_key
from facility.store.tables import ScheduleMarkRow

SITE = ""  # the device id stored for a schedule that makes one task for the whole site


@dataclass(frozen=True)
class Mark:
    """One (schedule, device)'s progress; `device_id` is SITE for a site-wide schedule."""

    schedule_id: str
    device_id: str
    occurrence: int | None = None
    meter: float | None = None


class ScheduleStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def marks(self) -> dict[tuple[str, str], Mark]:
        """Every stored mark, by (schedule, device)."""
        async with self._sessions() as s:
            rows = await s.scalars(select(ScheduleMarkRow))
            return {(r.schedule_id, r.device_id): Mark(r.schedule_id, r.device_id, r.occurrence, r.meter) for r in rows}

    async def save(self, marks: Iterable[Mark], ts: int) -> None:
        """Store `marks` in one transaction: all of them or, on failure, none."""
        async with self._sessions.begin() as s:
            for mark in marks:
                row = await by_key(s, ScheduleMarkRow, schedule_id=mark.schedule_id, device_id=mark.device_id)
                if row is None:
                    row = ScheduleMarkRow(schedule_id=mark.schedule_id, device_id=mark.device_id)
                    s.add(row)
                row.occurrence, row.meter, row.changed_at = mark.occurrence, mark.meter, ts
