"""The embedded telemetry store: readings in one SQLite file, written in batches.

Calls are blocking; callers run them in a worker thread (`asyncio.to_thread`) so the event loop
never waits on disk.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from facility.model import Quality, Reading

_SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    device TEXT NOT NULL, point TEXT NOT NULL, ts INTEGER NOT NULL,
    value, quality TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS readings_by_point ON readings (device, point, ts);
"""


class SqliteTelemetry:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def write(self, readings: Sequence[Reading]) -> None:
        rows = [(r.device, r.point, r.ts, r.value, r.quality.value) for r in readings]
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT INTO readings VALUES (?, ?, ?, ?, ?)", rows)
            self._db.execute("COMMIT")

    def history(self, device: str, point: str, start_ns: int, end_ns: int) -> list[Reading]:
        with self._lock:
            rows = self._db.execute(
                "SELECT ts, value, quality FROM readings"
                " WHERE device = ? AND point = ? AND ts >= ? AND ts < ? ORDER BY ts",
                (device, point, start_ns, end_ns),
            ).fetchall()
        return [Reading(device, point, value, Quality(q), ts) for ts, value, q in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()
