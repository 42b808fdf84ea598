"""The alarm activations a flood is judged by, read from the ops store's alarm history.

A flood (ISA-18.2, EEMUA 191: more alarms raised than duty staff can handle) is a fact about the
alarm history, not about one process: the rule worker that raises the alarms and an API in a process
of its own (issue 12) both judge it from here (rules.flood), so that they cannot disagree.
"""

from __future__ import annotations

from sqlalchemy import false, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from facility.store.tables import AlarmHistoryRow, AlarmRow
from facility.vocabulary import ACTIVATIONS


async def activations(sessions: async_sessionmaker[AsyncSession], after_ns: int, until_ns: int) -> list[int]:
    """When alarms went active in (`after_ns`, `until_ns`], oldest first (UTC ns), counting only the
    alarms in front of duty staff: not shelved, suppressed or out of service. Read by the history's
    (action, time) index, so a long history costs nothing per raise."""
    query = (
        select(AlarmHistoryRow.ts)
        .join(AlarmRow, AlarmRow.id == AlarmHistoryRow.alarm_id)
        .where(
            AlarmHistoryRow.action.in_(ACTIVATIONS),
            AlarmHistoryRow.ts > after_ns,
            AlarmHistoryRow.ts <= until_ns,
            AlarmRow.shelved == false(),
            AlarmRow.suppressed == false(),
            AlarmRow.out_of_service == false(),
        )
        .order_by(AlarmHistoryRow.ts)
    )
    async with sessions() as s:
        return list((await s.scalars(query)).all())
