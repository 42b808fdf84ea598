"""The embedded telemetry store: readings in one SQLite file, written in batches.

One row per (device, point, time): writing a reading again replaces it, so a replay after an
outage leaves one copy. Old rows are deleted past the retention period by `prune`, which the
telemetry writer calls in a worker thread; it deletes a chunk per transaction on a connection of
its own, so a write waits for one chunk at most.

Writes are quick (WAL, no fsync per commit, 500 rows per statement) and the telemetry writer makes
them on the event loop; history queries can take longer and run in worker threads, on a
connection of their own, so a long one never holds up a write.

The database is its owner's alone (0600, see `private_file`): readings tell when flats are empty.
"""

from __future__ import annotations

import functools
import logging
import os
import sqlite3
import stat
import threading
from collections.abc import Sequence
from pathlib import Path

from facility.model import Reading
from facility.store.telemetry import Sample, StoreUnavailable

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    device TEXT NOT NULL, point TEXT NOT NULL, ts INTEGER NOT NULL, value, quality TEXT NOT NULL,
    PRIMARY KEY (device, point, ts)
) WITHOUT ROWID;
"""
PRUNE_CHUNK = 10_000  # rows deleted per transaction
ROWS_PER_STATEMENT = 500  # one INSERT per 500 rows costs a fraction of one per row
OWNER_ONLY = 0o600
_OTHERS = 0o077  # the mode bits of the group and of everyone else
_BESIDE = ("-wal", "-shm", "-journal")  # the files SQLite keeps next to a database


def private_file(path: Path) -> None:
    """Make the SQLite database `path` readable by its owner only, creating it empty (which SQLite
    takes as a new database) if it is missing, before SQLite opens it: SQLite would create it 0644
    less the umask. SQLite gives the -wal, -shm and -journal files it creates the database's mode,
    so they follow; those an older version left readable by others are narrowed too, and so is the
    database. This changes no umask: the process's other files are not the stores' business."""
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT, OWNER_ONLY))
    for file in (path, *(path.with_name(path.name + suffix) for suffix in _BESIDE)):
        try:
            mode = stat.S_IMODE(os.stat(file).st_mode)
        except FileNotFoundError:
            continue
        if mode & _OTHERS:
            os.chmod(file, mode & ~_OTHERS)
            log.warning("%s was readable by others (mode %o); it is now its owner's alone", file, mode)


@functools.cache
def _insert(rows: int) -> str:
    return "INSERT OR REPLACE INTO readings VALUES " + ",".join(["(?, ?, ?, ?, ?)"] * rows)


class SqliteTelemetry:
    quick_writes = True

    def __init__(self, path: Path, retention_s: float = 400 * 86400.0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        private_file(path)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()  # the writing connection
        self._reads = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._read_lock = threading.Lock()
        self.path, self.retention_s = path, retention_s

    def write(self, readings: Sequence[Reading]) -> None:
        params = [x for r in readings for x in (r.device, r.point, r.ts, r.value, r.quality.value)]
        try:
            with self._lock:
                self._db.execute("BEGIN")
                for i in range(0, len(readings), ROWS_PER_STATEMENT):
                    chunk = params[i * 5 : (i + ROWS_PER_STATEMENT) * 5]
                    self._db.execute(_insert(len(chunk) // 5), chunk)
                self._db.execute("COMMIT")
        except sqlite3.OperationalError as exc:  # disk full, locked, read-only: try again later
            with self._lock:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
            raise StoreUnavailable(str(exc)) from exc

    def prune(self, now_ns: int) -> int:
        """Delete readings older than the retention period; returns how many."""
        cutoff = now_ns - int(self.retention_s * 1e9)
        chunk = (
            "DELETE FROM readings WHERE (device, point, ts) IN"
            " (SELECT device, point, ts FROM readings WHERE ts < ? LIMIT ?)"
        )
        deleted = 0
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            while (n := db.execute(chunk, (cutoff, PRUNE_CHUNK)).rowcount) > 0:
                deleted += n
        finally:
            db.close()
        return deleted

    def history(
        self, device: str, point: str, start_ns: int, end_ns: int, bucket_s: float | None = None
    ) -> list[Sample]:
        where = "WHERE device = ? AND point = ? AND ts >= ? AND ts < ? AND quality = 'good'"
        args = (device, point, start_ns, end_ns)
        with self._read_lock:
            if bucket_s is None:
                rows = self._reads.execute(f"SELECT ts, value FROM readings {where} ORDER BY ts", args).fetchall()
                return [Sample(ts, v, v, v, 1) for ts, v in rows]
            bucket = max(1, int(bucket_s * 1e9))
            rows = self._reads.execute(
                f"SELECT (ts - ?) / ? AS b, avg(value), min(value), max(value), count(*) FROM readings {where}"
                " GROUP BY b ORDER BY b",
                (start_ns, bucket, *args),
            ).fetchall()
        return [Sample(start_ns + b * bucket, mean, lo, hi, n) for b, mean, lo, hi, n in rows]

    def close(self) -> None:
        with self._lock, self._read_lock:
            self._db.close()
            self._reads.close()
