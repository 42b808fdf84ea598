"""Collects input that cannot be used and keeps it in the ops store's dead-letter table.

`put` is called where the bad input is met (often on the hot path): it only counts and queues.
Each (source, key, reason) is logged once; the queue is written in batches by `run`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter

from facility.records import DeadLetter
from facility.store.ops import OpsStore

log = logging.getLogger(__name__)

MAX_PAYLOAD = 64 * 1024  # the most of a payload queued; the ops store keeps less (stores.dead_letter_payload_kb)
FLUSH_S = 1.0


class DeadLetters:
    def __init__(self, store: OpsStore) -> None:
        self._store = store
        self._queue: list[DeadLetter] = []
        self.counts: Counter[tuple[str, str, str]] = Counter()  # (source, key, reason) -> count

    def put(self, source: str, key: str, reason: str, payload: str | bytes | bytearray) -> None:
        if isinstance(payload, bytes | bytearray):
            payload = bytes(payload[:MAX_PAYLOAD]).decode("utf-8", errors="backslashreplace")
        seen = (source, key, reason)
        if seen not in self.counts:
            log.warning("%s input from %s kept as a dead letter: %s", source, key, reason)
        self.counts[seen] += 1
        self._queue.append(DeadLetter(time.time_ns(), source, key, reason, payload[:MAX_PAYLOAD]))

    async def run(self) -> None:
        try:
            while True:
                await asyncio.sleep(FLUSH_S)
                await self.flush()
        finally:
            await self.flush()

    async def flush(self) -> None:
        batch, self._queue = self._queue, []
        if not batch:
            return
        try:
            await self._store.letters.add(batch)
        except Exception:
            log.exception("cannot store %d dead letters; keeping them for the next try", len(batch))
            self._queue[:0] = batch
