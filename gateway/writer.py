"""Batches readings from the bus into the telemetry store, off the event loop, losing none.

`add` (a bus handler, on the hot path) only appends. `run` cuts the buffer into batches and hands
them to a sender task that writes them in a worker thread. When the store cannot take a batch
(down, or slower than the readings come in) the batch goes to the disk spool, and so does every
batch after it until the spool is empty again — order is kept. The sender retries the oldest
segment with a growing pause and, once the store answers, replays the spool oldest first as fast
as the store takes it. Readings the store refuses as malformed go to the dead-letter sink.

The order, oldest first: the batch being written and those waiting in memory, then the spool,
then the buffer. Batches wait in memory only while the spool is empty, so when one of them fails
it is put in front of the spool, never behind what was spooled after it.

In the spool, the readings rules judge (`alarm_points`) go to the alarm lane, never dropped;
routine telemetry may be, on a full disk (gateway.writer_spool). The store's answers are told apart
in gateway.writer_store.

`settled()` tells the MQTT ingest when what it handed over is safe — in the store or on disk — so
that QoS 1 messages are acknowledged only then. While someone waits, the buffer is cut as soon as
the sender is free rather than on the clock: the batch grows while the previous one is written
(group commit), so waiting costs latency, not throughput.

At shutdown nothing waits for a store that may hang: what is held in memory goes to the spool,
or straight to a local store whose writes are quick, and the log says how much went where.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from facility.aio import cancel_all
from facility.model import Reading
from facility.readiness import Figure, PartState
from facility.store.telemetry import StoreUnavailable, TelemetryStore
from gateway.spool import Spool
from gateway.writer_spool import OutageLog, SpoolLanes, in_thread, split_lanes
from gateway.writer_store import DeadLetter, StoreWrites

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 0.5  # the buffer is cut at least this often while the store keeps up
SPOOL_INTERVAL_S = 5.0  # ... and this often while batches go to the spool: fewer, fuller segments
MAX_PENDING = 2  # full batches waiting in memory for the store; more go to the spool
# While the spool is in use, one cut takes up to this many batches into one segment: a put waits
# for an fsync, and on a slow disk readings would pile up in memory behind puts of one batch each.
SPOOL_SEGMENT_BATCHES = 10
RETRY_FIRST_S = 1.0  # pause before the spool is tried again, doubled per failure ...
RETRY_MAX_S = 30.0  # ... up to this


@dataclass(slots=True)
class _Batch:
    """Readings cut from the buffer, and the position of the first of them among all readings
    added: what lets `settled()` know which additions are safe."""

    start: int
    readings: list[Reading]


class TelemetryWriter:
    """The readings' way from the bus to the store: in order, through the spool when it must."""

    def __init__(
        self,
        store: TelemetryStore,
        spool: Spool,
        dead_letter: DeadLetter | None = None,
        batch_size: int = 5000,
        *,
        retry_first_s: float = RETRY_FIRST_S,
        retry_max_s: float = RETRY_MAX_S,
        alarm_points: Callable[[], frozenset[tuple[str, str]]] = frozenset,
    ) -> None:
        self._spool = spool
        self._outage = OutageLog(spool.folder)
        self._store = StoreWrites(store, dead_letter, self._outage)
        self._lanes = SpoolLanes(spool)
        self.batch_size = batch_size
        self.retry_first_s = retry_first_s
        self.retry_max_s = retry_max_s
        self.alarm_points = alarm_points  # the (device, point) pairs rules judge, as they stand now
        self._buffer: list[Reading] = []
        self._added = 0  # readings ever added; the buffer holds the last len(_buffer) of them
        self._pending: deque[_Batch] = deque()  # batches for the store, oldest first
        self._inflight: _Batch | None = None  # a batch from memory being written now
        self._held: list[Reading] = []  # alarm readings neither store nor disk would take yet
        self._held_start: int | None = None  # ... and the earliest addition among them
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()  # (additions, done when safe)
        self._lock = asyncio.Lock()  # one decision at a time between memory and spool
        self._cut_lock = asyncio.Lock()  # one cut of the buffer at a time
        self._cut_now = asyncio.Event()  # the buffer holds a full batch, or someone waits on it
        self._work = asyncio.Event()  # the sender has something to do
        self._idle = asyncio.Event()  # nothing pending in memory, nothing from memory in flight
        self._idle.set()
        self._running = False
        self.replayed = 0  # readings written from the spool

    @property
    def store(self) -> TelemetryStore:
        """Where the batches go."""
        return self._store.store

    @property
    def written(self) -> int:
        """Readings the store took (directly or replayed)."""
        return self._store.written

    @property
    def dead_lettered(self) -> int:
        """Readings the store refused as malformed."""
        return self._store.dead_lettered

    @property
    def spooled(self) -> int:
        """Readings put into the spool."""
        return self._lanes.spooled

    @property
    def buffered(self) -> int:
        """Readings held in memory: the buffer, batches waiting, the batch being written, alarm
        readings the disk would not take."""
        pending = sum(len(b.readings) for b in self._pending)
        return len(self._buffer) + pending + len(self._inflight.readings if self._inflight else ()) + len(self._held)

    @property
    def spool_segments(self) -> int:
        return len(self._spool)

    @property
    def dropped(self) -> int:
        """Routine readings given up to a full spool or disk, counted and logged when it happened."""
        return self._lanes.dropped

    def add(self, readings: Sequence[Reading]) -> None:
        """Bus handler: append only."""
        self._buffer.extend(readings)
        self._added += len(readings)
        if len(self._buffer) >= self.batch_size:
            self._cut_now.set()

    def settled(self) -> asyncio.Future[None] | None:
        """None when every reading added so far is in the store or the spool (or was dropped by
        the spool's limit, counted); else a future that completes once they are."""
        if self._safe_upto() >= self._added:
            return None
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append((self._added, waiter))
        if self._inflight is None and not self._pending:  # the sender is free: cut now, not on the clock
            self._cut_now.set()
        return waiter

    async def run(self) -> None:
        """Write until cancelled; then everything held goes to the spool (or a quick local store)."""
        if len(self._spool):
            self._outage.started(f"{len(self._spool)} batches wait in the spool from an earlier run")
        self._running = True
        sender = asyncio.create_task(self._send_loop(), name="telemetry sender")
        pruner = asyncio.create_task(self._store.prune_loop(), name="telemetry retention")
        try:
            while True:
                interval = SPOOL_INTERVAL_S if len(self._spool) else FLUSH_INTERVAL_S
                # Not wait_for: on Python 3.11 it swallows a cancellation that meets a set event.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(interval):
                        await self._cut_now.wait()
                if sender.done():
                    sender.result()  # the sender never ends by itself: surface its error
                self._lanes.warn_if_filling()
                await self._cut(everything=bool(self._waiters) or not self._cut_now.is_set())
        finally:
            self._running = False
            await cancel_all([sender, pruner])
            # Shielded: a second cancellation must not cut the last flush short.
            await asyncio.shield(asyncio.ensure_future(self._drain_held(at_stop=True)))

    async def flush(self) -> None:
        """Hand everything added so far to the store, or to the spool when the store cannot take
        it; returns once nothing of it is left in memory (the spool may still be replaying)."""
        if not self._running:
            await self._drain_held()
            return
        await self._cut(everything=True)
        await self._idle.wait()

    # --- what is safe ---------------------------------------------------------------------------

    def _safe_upto(self) -> int:
        """How many of the readings added, counted from the first, are in the store or on disk."""
        starts = [b.start for b in self._pending]
        if self._inflight is not None:
            starts.append(self._inflight.start)
        if self._held_start is not None:
            starts.append(self._held_start)
        return min(starts, default=self._added - len(self._buffer))

    def _settle(self) -> None:
        if not self._waiters:
            return
        safe = self._safe_upto()
        while self._waiters and self._waiters[0][0] <= safe:
            _, waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    # --- cutting the buffer into batches ----------------------------------------------------

    async def _cut(self, everything: bool) -> None:
        """Move full batches (and with `everything`, the rest too) from the buffer onwards. While
        the spool is in use a batch is all the buffer holds, up to SPOOL_SEGMENT_BATCHES batches:
        what came in during one fsync goes in the next, so memory stays flat whatever the disk's
        latency (a replayed segment is one store write of at most that many batches)."""
        async with self._cut_lock:
            self._cut_now.clear()
            buffer = self._buffer
            while len(buffer) >= self.batch_size or (everything and buffer):
                size = self.batch_size * (SPOOL_SEGMENT_BATCHES if len(self._spool) else 1)
                batch = _Batch(self._added - len(buffer), buffer[:size])
                await self._place(batch)
                del buffer[: len(batch.readings)]  # only now: a cancelled place leaves the batch here
                self._settle()

    async def _place(self, batch: _Batch) -> None:
        async with self._lock:
            if not len(self._spool) and not self._held and len(self._pending) < MAX_PENDING:
                self._pending.append(batch)
                self._idle.clear()
                self._work.set()
                return
            if not len(self._spool):
                self._outage.started("the store is slower than the readings come in")
            await self._to_spool(batch)

    # --- the sender -------------------------------------------------------------------------

    async def _send_loop(self) -> None:
        delay = self.retry_first_s
        while True:
            seq: int | None = None
            if self._held and not len(self._spool):
                self._held_to_pending()  # the spool has drained: alarm readings the disk refused go now
            if self._pending:
                batch = self._inflight = self._pending.popleft()
                readings = batch.readings
            elif len(self._spool):
                self._idle.set()
                try:
                    segment = await in_thread(self._spool.oldest)
                except OSError as exc:
                    log.error("cannot read the spool in %s: %s", self._spool.folder, exc)
                    await asyncio.sleep(self.retry_max_s)
                    continue
                if segment is None:
                    continue
                seq, readings = segment
            else:
                self._idle.set()
                self._work.clear()
                await self._work.wait()
                continue
            try:
                stored = await self._store.write(readings)
            except asyncio.CancelledError:
                self._requeue_inflight()
                raise
            if stored:
                delay = self.retry_first_s
                if seq is None:
                    self._inflight = None
                    self._settle()
                    if self._waiters and not self._pending:
                        self._cut_now.set()  # what arrived during this write goes next, as one batch
                else:
                    self.replayed += len(readings)
                    self._outage.replayed_batches += 1
                    try:
                        await in_thread(self._spool.remove, seq)
                    except OSError as exc:  # it will be written again: harmless, but say so
                        log.error("cannot remove spool segment %d: %s", seq, exc)
                        await asyncio.sleep(self.retry_max_s)
                if self._outage.since is not None and not len(self._spool):
                    self._outage.ended()
                continue
            if seq is None:
                try:
                    await self._spool_inflight_and_pending()
                except asyncio.CancelledError:
                    self._requeue_inflight()
                    raise
            await asyncio.sleep(delay)  # a pause before the store is tried again, not a wait for it
            delay = min(delay * 2, self.retry_max_s)

    def _held_to_pending(self) -> None:
        """Alarm readings the disk would not take, as the oldest batch for the store."""
        assert self._held_start is not None
        self._pending.appendleft(_Batch(self._held_start, self._held))
        self._held, self._held_start = [], None
        self._idle.clear()

    async def _spool_inflight_and_pending(self) -> None:
        """The store failed a batch from memory: it and the batches waiting behind it go to the
        front of the spool (anything already there is newer)."""
        async with self._lock:
            self._requeue_inflight()
            await self._pending_to_spool_front()

    async def _pending_to_spool_front(self) -> None:
        """Move the batches waiting in memory to the front of the spool, keeping their order."""
        while self._pending:
            await self._to_spool(self._pending[-1], first=True)
            self._pending.pop()
            self._settle()
        self._idle.set()

    def _requeue_inflight(self) -> None:
        if self._inflight is not None:  # not known to be stored: write it again (that is harmless)
            self._pending.appendleft(self._inflight)
            self._inflight = None

    # --- the spool -----------------------------------------------------------------------------

    async def _to_spool(self, batch: _Batch, first: bool = False) -> None:
        """Put a batch in the spool (with `first`, in front), split into its lanes. When this
        returns, every reading of it is on disk, or was routine telemetry given up for want of
        room (counted and logged), or is an alarm reading held in memory until the disk takes it."""
        alarm, bulk = split_lanes(self._held + batch.readings, self.alarm_points())
        held_start = batch.start if self._held_start is None else min(self._held_start, batch.start)
        self._held, self._held_start = [], None
        if alarm and not await self._lanes.put(alarm, first, lane_alarm=True):
            self._held, self._held_start = alarm, held_start  # never dropped: retried with the next batch
        if bulk and not await self._lanes.put(bulk, first, lane_alarm=False):
            self._lanes.refused(bulk)
        self._work.set()

    async def _drain_held(self, at_stop: bool = False) -> None:
        """Without the sender: what is held in memory goes to the store, or to the spool when the
        store cannot take it, in order: batches waiting (older than the spool), then the buffer
        (newer: it goes behind the spool). At a stop, only a quick local store that is up is tried:
        a remote one may hang, and the spool is as safe."""
        try_store = not at_stop or (self._store.store.quick_writes and not self._store.down)
        to_store = to_spool = 0
        async with self._cut_lock:
            while self._pending and try_store and await self._store.write(self._pending[0].readings):
                to_store += len(self._pending.popleft().readings)
            to_spool += sum(len(b.readings) for b in self._pending)
            await self._pending_to_spool_front()
            while self._buffer or self._held:
                batch = _Batch(self._added - len(self._buffer), self._buffer[: self.batch_size])
                if not len(self._spool) and not self._held and try_store and await self._store.write(batch.readings):
                    to_store += len(batch.readings)
                else:
                    to_spool += len(batch.readings)
                    await self._to_spool(batch)
                del self._buffer[: len(batch.readings)]
                self._settle()
                if self._held and not self._buffer:
                    break  # the disk refuses even the alarm readings: nothing more can be done
            if self._held:
                log.error("%d alarm readings lost: neither the store nor the spool takes them", len(self._held))
                self._held, self._held_start = [], None
                while self._waiters:  # not safe: their MQTT messages stay unacknowledged, to come again
                    _, waiter = self._waiters.popleft()
                    if not waiter.done():
                        waiter.set_exception(StoreUnavailable("neither the store nor the spool took the readings"))
            self._settle()
            self._idle.set()
        if at_stop:
            log.info(
                "telemetry writer stopped: %d readings to the store, %d to the spool; %d segments wait in the spool",
                to_store,
                to_spool,
                len(self._spool),
            )

    # --- readiness and metrics --------------------------------------------------------------------

    def parts(self) -> Iterable[PartState]:
        yield self._store.part()
        yield self._lanes.part(holding_alarms=bool(self._held))

    def figures(self) -> Iterable[Figure]:
        counters = (
            ("readings_received_total", "readings handed to the telemetry writer", self._added),
            ("readings_stored_total", "readings the telemetry store took (directly or replayed)", self.written),
            ("readings_spooled_total", "readings put into the spool", self.spooled),
            ("readings_replayed_total", "readings written from the spool", self.replayed),
            ("readings_dead_lettered_total", "readings the store refused as malformed", self.dead_lettered),
            ("readings_dropped_total", "routine readings dropped because the spool or its disk was full", self.dropped),
        )
        for name, text, value in counters:
            yield Figure(name, text, "counter", value)
        yield Figure("spool_bytes", "bytes the spool holds on disk", "gauge", self._spool.bytes)
        yield Figure("spool_segments", "segments waiting in the spool", "gauge", len(self._spool))
        if self._spool.limit_bytes:
            yield Figure("spool_limit_bytes", "the spool's size limit", "gauge", self._spool.limit_bytes)
        yield Figure("writer_buffered_readings", "readings held in memory by the writer", "gauge", self.buffered)
