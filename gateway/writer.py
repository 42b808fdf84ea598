"""Batches readings from the bus into the telemetry store, off the event loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from facility.model import Reading
from facility.store.telemetry import SqliteTelemetry

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 0.5


class TelemetryWriter:
    def __init__(self, store: SqliteTelemetry) -> None:
        self._store = store
        self._buffer: list[Reading] = []

    def add(self, readings: Sequence[Reading]) -> None:
        self._buffer.extend(readings)

    async def run(self) -> None:
        try:
            while True:
                await asyncio.sleep(FLUSH_INTERVAL_S)
                await self.flush()
        finally:
            await self.flush()

    async def flush(self) -> None:
        batch, self._buffer = self._buffer, []
        if not batch:
            return
        try:
            await asyncio.to_thread(self._store.write, batch)
        except Exception:
            log.exception("telemetry store write failed; keeping %d readings for the next try", len(batch))
            self._buffer[:0] = batch
