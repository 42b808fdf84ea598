"""The duty desk's pages of alarms: filters (open, state, priority, device, raised between) and
orders (SORTS), and how many match in all, so that the desk and the list exports page through
thousands of alarms in SQL rather than in memory.

A state filter is the SQL form of AlarmState.of, so that a page filtered by state agrees with the
state each alarm on it shows.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from sqlalchemy import ColumnElement, and_, case, false, func, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from facility.model import AlarmState
from facility.records import AlarmRecord
from facility.store.alarms import alarm_record
from facility.store.tables import AlarmRow


class AlarmPages:
    """Pages of the alarms of one ops store (`OpsStore.pages`)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def page(
        self,
        *,
        open_only: bool = True,
        states: Collection[AlarmState] = (),
        priorities: Collection[str] = (),
        devices: Collection[str] | None = None,
        since: int | None = None,
        until: int | None = None,
        sort: str = "desk",
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[AlarmRecord], int]:
        """One page of the alarms matching every filter given, and how many match in all.

        `devices` limits to those devices (None: any); `since`/`until` bound when they were raised.
        `sort` is one of SORTS; `desk` puts what needs duty staff first: unacknowledged, then by
        priority, then the latest change."""
        where: list[ColumnElement[bool]] = []
        if open_only:
            where.append(AlarmRow.is_open.is_(True))
        if states:
            where.append(or_(*(_state_is(state) for state in states)))
        if priorities:
            where.append(AlarmRow.priority.in_(list(priorities)))
        if devices is not None:
            where.append(AlarmRow.device_id.in_(list(devices)))
        if since is not None:
            where.append(AlarmRow.raised_at >= since)
        if until is not None:
            where.append(AlarmRow.raised_at < until)
        async with self._sessions() as s:
            total = (await s.execute(select(func.count()).select_from(AlarmRow).where(*where))).scalar_one()
            query = select(AlarmRow).where(*where).order_by(*SORTS[sort](), AlarmRow.id.desc())
            rows = (await s.scalars(query.limit(limit).offset(offset))).all()
            return [alarm_record(row) for row in rows], total


_PRIORITY_RANK = case({"emergency": 0, "high": 1, "medium": 2, "low": 3}, value=AlarmRow.priority, else_=4)

SORTS: dict[str, Callable[[], tuple[ColumnElement[Any], ...]]] = {
    "desk": lambda: (AlarmRow.acknowledged.asc(), _PRIORITY_RANK.asc(), AlarmRow.changed_at.desc()),
    "priority": lambda: (_PRIORITY_RANK.asc(), AlarmRow.changed_at.desc()),
    "-priority": lambda: (_PRIORITY_RANK.desc(), AlarmRow.changed_at.desc()),
    "changed_at": lambda: (AlarmRow.changed_at.asc(),),
    "-changed_at": lambda: (AlarmRow.changed_at.desc(),),
    "raised_at": lambda: (AlarmRow.raised_at.asc(),),
    "-raised_at": lambda: (AlarmRow.raised_at.desc(),),
}


def _state_is(state: AlarmState) -> ColumnElement[bool]:
    """The SQL form of AlarmState.of: the alarms that are in `state`."""
    closed = and_(AlarmRow.active == false(), AlarmRow.acknowledged, AlarmRow.shelved == false())
    kept_away = (  # in the order AlarmState.of judges them: the first flag set names the state
        (AlarmState.OUT_OF_SERVICE, AlarmRow.out_of_service),
        (AlarmState.SHELVED, AlarmRow.shelved),
        (AlarmState.SUPPRESSED, AlarmRow.suppressed),
    )
    if state is AlarmState.NORMAL:
        return closed
    ahead = [not_(closed)]
    for named, flag in kept_away:
        if state is named:
            return and_(*ahead, flag)
        ahead.append(flag == false())
    conditions = {
        AlarmState.UNACKNOWLEDGED: and_(AlarmRow.active, AlarmRow.acknowledged == false()),
        AlarmState.ACKNOWLEDGED: and_(AlarmRow.active, AlarmRow.acknowledged),
        AlarmState.RTN_UNACKNOWLEDGED: and_(AlarmRow.active == false(), AlarmRow.acknowledged == false()),
    }
    return and_(*ahead, conditions[state])
