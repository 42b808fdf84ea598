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
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TypeVar

from facility.aio import cancel_all
from facility.model import Reading
from facility.store.telemetry import BatchRejected, StoreUnavailable, TelemetryStore
from gateway.spool import Spool

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 0.5  # the buffer is cut at least this often while the store keeps up
SPOOL_INTERVAL_S = 5.0  # ... and this often while batches go to the spool: fewer, fuller segments
MAX_PENDING = 2  # full batches waiting in memory for the store; more go to the spool
RETRY_FIRST_S = 1.0  # pause before the spool is tried again, doubled per failure ...
RETRY_MAX_S = 30.0  # ... up to this
PRUNE_EVERY_S = 3600.0  # how often the store deletes what is past its retention (first: at start)

DeadLetter = Callable[[str, str, str, str], None]  # (source, key, reason, payload)
T = TypeVar("T")


class TelemetryWriter:
    def __init__(
        self,
        store: TelemetryStore,
        spool: Spool,
        dead_letter: DeadLetter | None = None,
        batch_size: int = 5000,
        *,
        retry_first_s: float = RETRY_FIRST_S,
        retry_max_s: float = RETRY_MAX_S,
    ) -> None:
        self._store = store
        self._spool = spool
        self._dead_letter = dead_letter
        self.batch_size = batch_size
        self.retry_first_s = retry_first_s
        self.retry_max_s = retry_max_s
        self._buffer: list[Reading] = []
        self._pending: deque[list[Reading]] = deque()  # batches for the store, oldest first
        self._inflight: list[Reading] | None = None  # a batch from memory being written now
        self._lock = asyncio.Lock()  # one decision at a time between memory and spool
        self._cut_lock = asyncio.Lock()  # one cut of the buffer at a time
        self._cut_now = asyncio.Event()  # the buffer holds a full batch
        self._work = asyncio.Event()  # the sender has something to do
        self._idle = asyncio.Event()  # nothing pending in memory, nothing from memory in flight
        self._idle.set()
        self._running = False
        self._spool_failing = False  # the last spool put failed (logged once)
        self._spooling_since: float | None = None  # monotonic time the spool started filling
        self._replayed_batches = 0  # ... and how many batches were replayed since
        self._outage_logged = False  # ... and whether a store failure was logged since
        # Counters for the health endpoint and benchmarks, in readings.
        self.written = 0  # taken by the store (directly or replayed)
        self.spooled = 0  # put into the spool
        self.replayed = 0  # written from the spool
        self.dead_lettered = 0  # refused by the store as malformed

    @property
    def buffered(self) -> int:
        """Readings held in memory: the buffer, batches waiting, the batch being written."""
        return len(self._buffer) + sum(map(len, self._pending)) + len(self._inflight or ())

    @property
    def spool_segments(self) -> int:
        return len(self._spool)

    def add(self, readings: Sequence[Reading]) -> None:
        """Bus handler: append only."""
        self._buffer.extend(readings)
        if len(self._buffer) >= self.batch_size:
            self._cut_now.set()

    async def run(self) -> None:
        """Write until cancelled; then everything held goes to the store, or else to the spool."""
        if len(self._spool):
            self._spooling_started(f"{len(self._spool)} batches wait in the spool from an earlier run")
        self._running = True
        sender = asyncio.create_task(self._send_loop(), name="telemetry sender")
        pruner = asyncio.create_task(self._prune_loop(), name="telemetry retention")
        try:
            while True:
                interval = SPOOL_INTERVAL_S if len(self._spool) else FLUSH_INTERVAL_S
                # Not wait_for: on Python 3.11 it swallows a cancellation that meets a set event.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(interval):
                        await self._cut_now.wait()
                if sender.done():
                    sender.result()  # the sender never ends by itself: surface its error
                await self._cut(everything=not self._cut_now.is_set())
        finally:
            self._running = False
            await cancel_all([sender, pruner])
            # Shielded: a second cancellation must not cut the last flush short.
            await asyncio.shield(asyncio.ensure_future(self._drain_held()))

    async def _prune_loop(self) -> None:
        while True:
            try:
                deleted = await asyncio.to_thread(self._store.prune, time.time_ns())
            except Exception:  # the store is down or busy: the next round deletes what this one left
                log.exception("telemetry store could not delete readings past its retention")
            else:
                if deleted:
                    log.info("telemetry store: %d readings past the retention deleted", deleted)
            await asyncio.sleep(PRUNE_EVERY_S)

    async def flush(self) -> None:
        """Hand everything added so far to the store, or to the spool when the store cannot take
        it; returns once nothing of it is left in memory (the spool may still be replaying)."""
        if not self._running:
            await self._drain_held()
            return
        await self._cut(everything=True)
        await self._idle.wait()

    # --- cutting the buffer into batches ----------------------------------------------------

    async def _cut(self, everything: bool) -> None:
        """Move full batches (and with `everything`, the rest too) from the buffer onwards."""
        async with self._cut_lock:
            self._cut_now.clear()
            buffer = self._buffer
            while len(buffer) >= self.batch_size or (everything and buffer):
                batch = buffer[: self.batch_size]
                await self._place(batch)
                del buffer[: len(batch)]  # only now: a cancelled place leaves the batch here

    async def _place(self, batch: list[Reading]) -> None:
        async with self._lock:
            if not len(self._spool) and len(self._pending) < MAX_PENDING:
                self._pending.append(batch)
                self._idle.clear()
                self._work.set()
                return
            if not len(self._spool):
                self._spooling_started("the store is slower than the readings come in")
            if not await self._to_spool(batch):  # the disk failed: hold it in memory rather than lose it
                self._pending.append(batch)
                self._idle.clear()

    # --- the sender -------------------------------------------------------------------------

    async def _send_loop(self) -> None:
        delay = self.retry_first_s
        while True:
            seq: int | None = None
            if self._pending:
                batch = self._inflight = self._pending.popleft()
            elif len(self._spool):
                self._idle.set()
                try:
                    segment = await _in_thread(self._spool.oldest)
                except OSError as exc:
                    log.error("cannot read the spool in %s: %s", self._spool.folder, exc)
                    await asyncio.sleep(self.retry_max_s)
                    continue
                if segment is None:
                    continue
                seq, batch = segment
            else:
                self._idle.set()
                self._work.clear()
                await self._work.wait()
                continue
            try:
                stored = await self._write(batch)
            except asyncio.CancelledError:
                self._requeue_inflight()
                raise
            if stored:
                delay = self.retry_first_s
                if seq is None:
                    self._inflight = None
                else:
                    self.replayed += len(batch)
                    self._replayed_batches += 1
                    try:
                        await _in_thread(self._spool.remove, seq)
                    except OSError as exc:  # it will be written again: harmless, but say so
                        log.error("cannot remove spool segment %d: %s", seq, exc)
                        await asyncio.sleep(self.retry_max_s)
                if self._spooling_since is not None and not len(self._spool):
                    self._spooling_ended()
                continue
            if seq is None:
                try:
                    await self._spool_inflight_and_pending()
                except asyncio.CancelledError:
                    self._requeue_inflight()
                    raise
            await asyncio.sleep(delay)  # a pause before the store is tried again, not a wait for it
            delay = min(delay * 2, self.retry_max_s)

    async def _spool_inflight_and_pending(self) -> None:
        """The store failed a batch from memory: it and the batches waiting behind it go to the
        front of the spool (anything already there is newer)."""
        async with self._lock:
            self._requeue_inflight()
            await self._pending_to_spool_front()

    async def _pending_to_spool_front(self) -> None:
        """Move the batches waiting in memory to the front of the spool, keeping their order."""
        while self._pending and await self._to_spool(self._pending[-1], first=True):
            self._pending.pop()
        if not self._pending:
            self._idle.set()

    def _requeue_inflight(self) -> None:
        if self._inflight is not None:  # not known to be stored: write it again (that is harmless)
            self._pending.appendleft(self._inflight)
            self._inflight = None

    # --- store, spool, dead letters ---------------------------------------------------------

    async def _write(self, batch: list[Reading]) -> bool:
        """Write a batch; False when the store cannot take it now. Refused readings are dead-lettered."""
        try:
            if self._store.quick_writes:
                self._store.write(batch)
            else:
                await asyncio.to_thread(self._store.write, batch)
        except StoreUnavailable as exc:
            self._spooling_started(f"telemetry store unavailable: {exc}", outage=True)
            return False
        except BatchRejected as exc:
            rejected = batch if exc.rejected is None else exc.rejected
            self._reject(rejected, exc)
            self.written += len(batch) - len(rejected)
            return True
        except Exception as exc:  # a bug or an unforeseen failure: keep the batch, do not drop it
            if not self._outage_logged:
                log.exception("telemetry store write failed")
            self._spooling_started(f"telemetry store write failed: {exc!r}", outage=True)
            return False
        self.written += len(batch)
        return True

    async def _to_spool(self, batch: list[Reading], first: bool = False) -> bool:
        """Put a batch in the spool (with `first`, in front); False when the disk fails. When this
        returns True the batch is in the spool, even if a cancellation arrived meanwhile."""
        try:
            await _in_thread(self._spool.put, batch, first)
        except OSError as exc:
            if not self._spool_failing:
                log.error("cannot write to the spool in %s: %s", self._spool.folder, exc)
                self._spool_failing = True
            return False
        self._spool_failing = False
        self.spooled += len(batch)
        self._work.set()
        return True

    async def _drain_held(self) -> None:
        """Without the sender: what is held in memory goes to the store, or to the spool when the
        store cannot take it, in order: batches waiting (older than the spool), then the buffer
        (newer: it goes behind the spool)."""
        async with self._cut_lock:
            while self._pending and await self._write(self._pending[0]):
                self._pending.popleft()
            await self._pending_to_spool_front()
            while self._buffer:
                batch = self._buffer[: self.batch_size]
                if (len(self._spool) or not await self._write(batch)) and not await self._to_spool(batch):
                    break
                del self._buffer[: len(batch)]
            if self._pending or self._buffer:
                log.error("%d readings lost: neither the store nor the spool takes them", self.buffered)
                self._pending.clear()
                self._buffer.clear()
            self._idle.set()

    def _reject(self, rejected: Sequence[Reading], exc: BatchRejected) -> None:
        reasons = exc.reasons if exc.reasons is not None and len(exc.reasons) == len(rejected) else None
        self.dead_lettered += len(rejected)
        if self._dead_letter is None:
            log.error("telemetry store refused %d readings (%s); no dead-letter sink", len(rejected), exc.reason)
            return
        for i, r in enumerate(rejected):
            payload = json.dumps(
                {"device": r.device, "point": r.point, "value": r.value, "quality": r.quality.value, "ts": r.ts},
                default=str,
            )
            self._dead_letter("telemetry", f"{r.device}/{r.point}", reasons[i] if reasons else exc.reason, payload)

    # --- outage log: once when the spool starts filling, once when it is empty again ---------

    def _spooling_started(self, why: str, outage: bool = False) -> None:
        if self._spooling_since is None:
            self._spooling_since = time.monotonic()
            self._replayed_batches = 0
            self._outage_logged = outage
            log.warning("%s; batches go to the spool in %s until it is drained", why, self._spool.folder)
        elif outage and not self._outage_logged:  # it began as slowness (or a restart): say why now
            self._outage_logged = True
            log.warning("%s; batches keep going to the spool", why)

    def _spooling_ended(self) -> None:
        assert self._spooling_since is not None
        log.warning(
            "telemetry store has caught up after %.0f s; replayed %d batches from the spool",
            time.monotonic() - self._spooling_since,
            self._replayed_batches,
        )
        self._spooling_since = None


async def _in_thread(fn: Callable[..., T], *args: object) -> T:
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
