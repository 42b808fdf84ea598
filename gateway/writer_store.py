"""The telemetry writer's side of the store: one batch written, readings it refuses dead-lettered,
and the store's readiness (down, or a write that may hang).

Apart from the writer's ordering (gateway.writer) because it is where the three answers of a store
are told apart: unavailable (spool and retry), refused as malformed (dead letters: retrying would
fail again), and anything else (a bug or an unforeseen failure: keep the batch, never drop it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence

from facility.model import Reading
from facility.readiness import PartState, State
from facility.store.telemetry import BatchRejected, StoreUnavailable, TelemetryStore
from gateway.writer_spool import OutageLog

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 3600.0  # how often the store deletes what is past its retention (first: at start)
HUNG_AFTER_S = 5.0  # a store write still waiting after this long makes the store degraded: it may hang

DeadLetter = Callable[[str, str, str, str], None]  # (source, key, reason, payload)


class StoreWrites:
    """Batches into the telemetry store, off the event loop unless its writes are quick."""

    def __init__(self, store: TelemetryStore, dead_letter: DeadLetter | None, outage: OutageLog) -> None:
        self.store = store
        self._dead_letter = dead_letter
        self._outage = outage
        self.down = False  # the last write failed for want of the store
        self._last_write_ns: int | None = None  # the store's last success
        self._writing_since: float | None = None  # monotonic start of a store write under way
        self.written = 0  # readings the store took (directly or replayed)
        self.dead_lettered = 0  # readings it refused as malformed

    async def write(self, batch: list[Reading]) -> bool:
        """Write a batch; False when the store cannot take it now. Refused readings are dead-lettered."""
        self._writing_since = time.monotonic()
        try:
            if self.store.quick_writes:
                self.store.write(batch)
            else:
                await asyncio.to_thread(self.store.write, batch)
        except StoreUnavailable as exc:
            self.down, self._writing_since = True, None
            self._outage.started(f"telemetry store unavailable: {exc}", outage=True)
            return False
        except BatchRejected as exc:
            rejected = batch if exc.rejected is None else exc.rejected
            self._reject(rejected, exc)
            self.written += len(batch) - len(rejected)
            self._stored()
            return True
        except Exception as exc:  # a bug or an unforeseen failure: keep the batch, do not drop it
            if not self._outage.outage_logged:
                log.exception("telemetry store write failed")
            self.down, self._writing_since = True, None
            self._outage.started(f"telemetry store write failed: {exc!r}", outage=True)
            return False
        self.written += len(batch)
        self._stored()
        return True

    async def prune_loop(self) -> None:
        """Delete what is past the store's retention, hourly until cancelled."""
        while True:
            try:
                deleted = await asyncio.to_thread(self.store.prune, time.time_ns())
            except Exception:  # the store is down or busy: the next round deletes what this one left
                log.exception("telemetry store could not delete readings past its retention")
            else:
                if deleted:
                    log.info("telemetry store: %d readings past the retention deleted", deleted)
            await asyncio.sleep(PRUNE_EVERY_S)

    def _stored(self) -> None:
        self._writing_since = None
        self.down = False
        self._last_write_ns = time.time_ns()

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

    def part(self) -> PartState:
        """The store's readiness: down while writes fail, degraded while one may hang."""
        waiting = time.monotonic() - self._writing_since if self._writing_since is not None else 0.0
        if self.down:
            return PartState(
                "telemetry store",
                "telemetry_store",
                State.DOWN,
                self._last_write_ns,
                "writes fail; readings go to the spool",
            )
        if waiting > HUNG_AFTER_S:
            detail = f"a write has waited {waiting:.0f} s for an answer"
            return PartState("telemetry store", "telemetry_store", State.DEGRADED, self._last_write_ns, detail)
        return PartState("telemetry store", "telemetry_store", State.UP, self._last_write_ns)
