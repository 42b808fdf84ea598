"""Alarm floods: more alarms raised than duty staff can handle (ISA-18.2, EEMUA 191).

A flood starts when more than FLOOD_START alarms in front of staff went active within the last
FLOOD_WINDOW_NS, and ends when fewer than FLOOD_END remain in the window, so that a steady rate does
not flap. The alarm history in the ops store is what counts them (facility.store.flood), not a
process's memory: the rule worker announces a flood's start and end (`flood` events), and any
process, the API's included, answers what the state is now by judging the same history.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from facility.store.alarms import MINUTE_NS
from facility.store.flood import activations

FLOOD_WINDOW_NS = 10 * MINUTE_NS
FLOOD_START = 10  # more than this many alarms raised within the window: a flood
FLOOD_END = 5  # it ends when fewer than this many remain in the window
LOOKBACK_NS = 24 * 60 * MINUTE_NS  # how far back the history is judged: a flood older than a day is one from then


@dataclass(frozen=True)
class Flood:
    """A flood under way: `count` alarms raised within the window now, the first since `since`."""

    count: int
    since: int

    def shown(self) -> dict[str, Any]:
        """As the `flood` event and GET /alarms/flood give it."""
        return {"active": True, "count": self.count, "since": self.since}


NO_FLOOD: dict[str, Any] = {"active": False}


def judge(raised: Sequence[int], now: int) -> Flood | None:
    """Replay the start and end of floods over the activations `raised` (oldest first, none after
    `now`); the flood under way at `now`, if any. An end falls at the moment an activation leaves the
    window and too few remain, as the rule worker's checks find it."""
    window: deque[int] = deque()
    since: int | None = None
    for ts in raised:
        since = _expire(window, since, ts)
        window.append(ts)
        if since is None and len(window) > FLOOD_START:
            since = ts
    since = _expire(window, since, now)
    return None if since is None else Flood(len(window), since)


def _expire(window: deque[int], since: int | None, until: int) -> int | None:
    """Let the activations leave the window up to `until`, ending the flood where too few remain."""
    while window and window[0] + FLOOD_WINDOW_NS <= until:
        first = window[0]
        while window and window[0] == first:  # activations at one time leave it together
            window.popleft()
        if since is not None and len(window) < FLOOD_END:
            since = None
    return since


class FloodWatch:
    """Tells of a flood's start and end, judged from the store's alarm history.

    Only the edges are remembered here (what was last told), so that a start or end is announced
    once; the state itself is the history's, read again by `state`."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], tell: Callable[[dict[str, Any]], object]) -> None:
        """`tell`: publishes a `flood` event."""
        self._sessions = sessions
        self._tell = tell
        self._told: bool | None = None  # None: not judged yet since the start

    async def state(self, now: int) -> Flood | None:
        """The flood under way at `now`, if any, from the alarm history."""
        return judge(await activations(self._sessions, now - LOOKBACK_NS, now), now)

    async def raised(self, ts: int) -> None:
        """An alarm in front of staff went active at `ts` (it is in the store): a flood may start."""
        if await self._flooding(ts):
            return
        count = len(await activations(self._sessions, ts - FLOOD_WINDOW_NS, ts))
        if count > FLOOD_START:
            self._told = True
            self._tell(Flood(count, ts).shown())

    async def check(self, now: int) -> None:
        """The clock moved on: a flood ends when too few alarms remain in the window."""
        if not await self._flooding(now):
            return
        if len(await activations(self._sessions, now - FLOOD_WINDOW_NS, now)) < FLOOD_END:
            self._told = False
            self._tell(dict(NO_FLOOD))

    async def _flooding(self, now: int) -> bool:
        """Whether a flood was told; after a restart, whether the history shows one (it was told then)."""
        if self._told is None:
            self._told = await self.state(now) is not None
        return self._told
