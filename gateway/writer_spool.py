"""The telemetry writer's side of the disk spool: batches put into their lanes, what the disk
refused counted and logged, and the outage log that says when the spool started and stopped filling.

Apart from the writer's ordering (gateway.writer) because this is what "nothing lost" costs on a
full disk: alarm readings take the alarm lane and are never dropped, routine telemetry may be given
up, counted and logged once a minute, and the spool's readiness says so.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from facility.model import Reading
from facility.readiness import PartState, State
from gateway.spool import Spool, SpoolFull

log = logging.getLogger(__name__)

SPOOL_WARN_AT = 0.8  # from this share of its limit the spool is reported degraded and warned about ...
SPOOL_WARN_EVERY_S = 60.0  # ... this often

T = TypeVar("T")


def split_lanes(readings: list[Reading], wanted: frozenset[tuple[str, str]]) -> tuple[list[Reading], list[Reading]]:
    """(what rules judge: the (device, point) pairs in `wanted`, routine telemetry)."""
    if not wanted:
        return [], readings
    alarm: list[Reading] = []
    bulk: list[Reading] = []
    for r in readings:
        (alarm if (r.device, r.point) in wanted else bulk).append(r)
    return alarm, bulk


class SpoolLanes:
    """Puts into the spool, and what the spool's disk would not take."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self.failing = False  # the last put failed (logged once)
        self._last_ns: int | None = None  # the spool's last success
        self._warned = 0.0  # monotonic time of the last "spool filling" warning
        self._refused_logged = -SPOOL_WARN_EVERY_S  # ... and of the last "readings dropped" error
        self._refused_unlogged: tuple[int, int, int] = (0, 2**63, 0)  # dropped since: count, first ts, last ts
        self.spooled = 0  # readings put into the spool
        self.refused_by_disk = 0  # routine readings neither the spool nor its limit had room for

    @property
    def dropped(self) -> int:
        """Routine readings given up to a full spool or disk, counted and logged when it happened."""
        return self.spool.dropped_readings + self.refused_by_disk

    async def put(self, readings: list[Reading], first: bool, lane_alarm: bool) -> bool:
        """One put; False when the spool or its disk has no room for it. When this returns True
        the readings are in the spool, even if a cancellation arrived meanwhile."""
        try:
            await in_thread(self.spool.put, readings, first, lane_alarm)
        except SpoolFull:
            return False
        except OSError as exc:
            if not self.failing:
                log.error("cannot write to the spool in %s: %s", self.spool.folder, exc)
                self.failing = True
            return False
        self.failing = False
        self._last_ns = time.time_ns()
        self.spooled += len(readings)
        return True

    def refused(self, bulk: list[Reading]) -> None:
        """Count routine readings the spool had no room for; log them at once, then once a minute
        with what was given up since, so a full disk does not flood the log."""
        self.refused_by_disk += len(bulk)
        first_ts, last_ts = min(r.ts for r in bulk), max(r.ts for r in bulk)
        count, since, _ = self._refused_unlogged
        self._refused_unlogged = (count + len(bulk), min(since, first_ts), last_ts)
        now = time.monotonic()
        if now - self._refused_logged < SPOOL_WARN_EVERY_S:
            return
        self._refused_logged = now
        count, since, until = self._refused_unlogged
        self._refused_unlogged = (0, 2**63, 0)
        log.error(
            "%d routine readings dropped (%s to %s): the spool in %s has no room; the count is "
            "facility_readings_dropped_total",
            count,
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since / 1e9)),
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(until / 1e9)),
            self.spool.folder,
        )

    def warn_if_filling(self) -> None:
        usage = self.spool.usage
        now = time.monotonic()
        if usage >= SPOOL_WARN_AT and now - self._warned >= SPOOL_WARN_EVERY_S:
            self._warned = now
            assert self.spool.limit_bytes is not None
            log.warning(
                "the spool in %s is %.0f%% full (%.1f of %.1f MB); when full, the oldest routine telemetry goes first",
                self.spool.folder,
                usage * 100,
                self.spool.bytes / 1e6,
                self.spool.limit_bytes / 1e6,
            )

    def part(self, holding_alarms: bool) -> PartState:
        """The spool's readiness; down when its disk refuses even the alarm readings held."""
        usage = self.spool.usage
        if self.failing or self.dropped:
            state, detail = State.DEGRADED, "the spool's disk refuses writes or routine telemetry was dropped"
        elif usage >= SPOOL_WARN_AT:
            state, detail = State.DEGRADED, f"{usage:.0%} full"
        else:
            state, detail = State.UP, ""
        if self.failing and holding_alarms:
            state = State.DOWN
        return PartState("spool", "spool", state, self._last_ns, detail)


class OutageLog:
    """Said once when the spool starts filling, once when it is empty again: an outage of an hour
    is two log lines, not one a batch."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self.since: float | None = None  # monotonic time the spool started filling
        self.replayed_batches = 0  # ... and how many batches were replayed since
        self.outage_logged = False  # ... and whether a store failure was logged since

    def started(self, why: str, outage: bool = False) -> None:
        if self.since is None:
            self.since = time.monotonic()
            self.replayed_batches = 0
            self.outage_logged = outage
            log.warning("%s; batches go to the spool in %s until it is drained", why, self._folder)
        elif outage and not self.outage_logged:  # it began as slowness (or a restart): say why now
            self.outage_logged = True
            log.warning("%s; batches keep going to the spool", why)

    def ended(self) -> None:
        assert self.since is not None
        log.warning(
            "telemetry store has caught up after %.0f s; replayed %d batches from the spool",
            time.monotonic() - self.since,
            self.replayed_batches,
        )
        self.since = None


async def in_thread(fn: Callable[..., T], *args: object) -> T:
    """Run fn in a worker thread to the end. A cancellation that arrives meanwhile is passed on at
    the caller's next await, so a spool file is never left half-done or unaccounted for."""
    future = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        try:
            return await future
        finally:
            if task is not None:
                task.cancel()
