"""Batches the telemetry store could not take wait here on disk, oldest first, until it can.

One file ("segment") per batch, named by a zero-padded sequence number. A segment is written
whole — temp file, fsync, rename, fsync of the folder — so a crash leaves the segment or nothing,
and it is removed only after the store has taken it. A new Spool on the same folder (after a
restart) finds the old segments, hands them out first and continues the numbering. A batch
older than every segment (one the writer held in memory while newer ones were spooled) can be put
in front: numbers start at 1 000 000 to leave room below. Only the sequence numbers and sizes
stay in memory; a segment is read when it is replayed.

Two lanes share the numbering. The alarm lane (`<seq>.alarm.seg`) holds the readings rules judge;
the bulk lane (`<seq>.seg`) holds routine telemetry. The alarm lane is replayed first, so that a
store coming back sees what alarms rest on before the backlog, and it is never dropped. The spool
has a size limit: a put that would pass it first drops the oldest bulk segments (and says how many
readings over which span of time), and a bulk batch that still does not fit is dropped itself. An
alarm batch is written even past the limit; only a disk that refuses it stops it (`OSError`).

Calls block (disk); callers run them in a worker thread. Puts may run in one thread while
another reads and removes the oldest segment.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec

from facility.model import Quality, Reading

log = logging.getLogger(__name__)

SUFFIX = ".seg"
ALARM_SUFFIX = ".alarm.seg"
FIRST_SEQ = 1_000_000  # the first number in an empty folder; lower ones are for `put(first=True)`
_NAME = re.compile(r"^(\d{12})(\.alarm)?\.seg$")
_QUALITY = {q.value: q for q in Quality}
# MessagePack keeps bool, int, float (NaN and infinities too), str and nil apart, so every value
# comes back with its type; and it is several times quicker than JSON, which matters while a
# backlog goes through the spool.
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(list[tuple[str, str, bool | int | float | str | None, str, int]]).decode


def pack(readings: Sequence[Reading]) -> bytes:
    """One array of [device, point, value, quality, ts]."""
    return _encode([(r.device, r.point, r.value, r.quality._value_, r.ts) for r in readings])


def unpack(data: bytes) -> list[Reading]:
    return [Reading(d, p, v, _QUALITY[q], ts) for d, p, v, q, ts in _decode(data)]


class SpoolFull(Exception):
    """A bulk batch that does not fit even after every older bulk segment was dropped."""


@dataclass(frozen=True, slots=True)
class Dropped:
    """Routine telemetry the spool gave up to stay within its limit: how much, and the time it covers."""

    readings: int
    first_ts: int  # UTC ns
    last_ts: int

    def describe(self) -> str:
        span = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.first_ts / 1e9))
        end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.last_ts / 1e9))
        return f"{self.readings} readings from {span} to {end}"


class Spool:
    def __init__(self, folder: Path, limit_bytes: int | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)  # the estate's readings: the service user's alone
        self.folder = folder
        self.limit_bytes = limit_bytes
        for stale in folder.glob("*.tmp"):  # a put cut short by a crash: never acknowledged
            stale.unlink()
        self._alarm: list[int] = []  # sequence numbers per lane, oldest first
        self._bulk: list[int] = []
        self._size: dict[int, int] = {}
        for path in folder.iterdir():
            if m := _NAME.match(path.name):
                seq = int(m.group(1))
                (self._alarm if m.group(2) else self._bulk).append(seq)
                self._size[seq] = path.stat().st_size
        self._alarm.sort()
        self._bulk.sort()
        self._next = max(self._size, default=FIRST_SEQ - 1) + 1
        self.bytes = sum(self._size.values())
        self._replaying: int | None = None  # the segment the sender has out: not dropped under it
        self._lock = threading.Lock()  # guards the lanes, sizes, bytes and _next
        self._put_lock = threading.Lock()  # puts land in sequence order
        # Routine telemetry given up to the limit, for the writer's counters and /metrics.
        self.dropped_readings = 0
        self.dropped_segments = 0

    def __len__(self) -> int:
        """How many segments wait."""
        return len(self._alarm) + len(self._bulk)

    @property
    def usage(self) -> float:
        """How full the spool is against its limit (0 without a limit)."""
        return self.bytes / self.limit_bytes if self.limit_bytes else 0.0

    def put(self, readings: Sequence[Reading], first: bool = False, alarm: bool = False) -> int:
        """Write a batch as the newest segment of its lane (or with `first`, as the oldest of all);
        returns its sequence number once it is on disk. Raises SpoolFull for a bulk batch that
        does not fit, and OSError when the disk refuses the write."""
        data = pack(readings)
        with self._put_lock:
            self._make_room(len(data), alarm)
            with self._lock:
                first = first and bool(self._size)
                if first:
                    seq = min(self._size) - 1
                    if seq < 0:
                        raise OSError(f"no sequence number left before segment 0 in {self.folder}")
                else:
                    seq = self._next
                    self._next += 1
            final = self._path(seq, alarm)
            try:
                self._write(final, data)
            except OSError as exc:
                if exc.errno != errno.ENOSPC or not self._drop_oldest_bulk():
                    raise
                self._write(final, data)  # room was made by dropping the oldest routine telemetry
            with self._lock:
                lane = self._alarm if alarm else self._bulk
                if first:
                    lane.insert(0, seq)
                else:
                    lane.append(seq)
                self._size[seq] = len(data)
                self.bytes += len(data)
        return seq

    def oldest(self) -> tuple[int, list[Reading]] | None:
        """The oldest segment of the alarm lane, else of the bulk lane, and its readings; None when
        the spool is empty.

        A segment that cannot be read is moved aside as `<seq>.bad` (and logged) so that it cannot
        block the ones behind it; it stays on disk for a person to look at.
        """
        while True:
            with self._lock:
                lane = self._alarm or self._bulk
                if not lane:
                    self._replaying = None
                    return None
                seq = lane[0]
                alarm = lane is self._alarm
                self._replaying = seq
            path = self._path(seq, alarm)
            try:
                return seq, unpack(path.read_bytes())
            except FileNotFoundError:
                log.error("spool segment %s vanished before it was replayed", path)
            except (ValueError, TypeError, KeyError) as exc:
                bad = path.with_suffix(".bad")
                os.replace(path, bad)
                log.error("spool segment %s cannot be read (%s); moved aside to %s", path, exc, bad)
            self._forget(seq)

    def remove(self, seq: int) -> None:
        """Delete a segment the store has taken."""
        alarm = seq in self._alarm
        self._path(seq, alarm).unlink(missing_ok=True)
        self._forget(seq)

    def _make_room(self, size: int, alarm: bool) -> None:
        """Drop the oldest bulk segments until `size` more bytes fit under the limit; a bulk batch
        that cannot fit is refused. An alarm batch is never refused for the limit."""
        if self.limit_bytes is None:
            return
        while self.bytes + size > self.limit_bytes and self._drop_oldest_bulk():
            pass
        if not alarm and self.bytes + size > self.limit_bytes:
            raise SpoolFull(f"the spool in {self.folder} is full ({self.bytes} of {self.limit_bytes} bytes)")

    def _drop_oldest_bulk(self) -> bool:
        """Delete the oldest bulk segment (not the one being replayed); False when there is none."""
        with self._lock:
            candidates = [s for s in self._bulk[:2] if s != self._replaying]
            if not candidates:
                return False
            seq = candidates[0]
        path = self._path(seq, False)
        try:
            readings = unpack(path.read_bytes())
        except (OSError, ValueError, TypeError, KeyError):
            readings = []
        path.unlink(missing_ok=True)
        self._forget(seq)
        self.dropped_segments += 1
        self.dropped_readings += len(readings)
        if readings:
            dropped = Dropped(len(readings), min(r.ts for r in readings), max(r.ts for r in readings))
            log.warning(
                "spool in %s is full: dropped the oldest routine telemetry, %s", self.folder, dropped.describe()
            )
        return True

    def _forget(self, seq: int) -> None:
        with self._lock:
            for lane in (self._alarm, self._bulk):
                if lane and lane[0] == seq:
                    lane.pop(0)
                    break
                if seq in lane:
                    lane.remove(seq)
                    break
            self.bytes -= self._size.pop(seq, 0)
            if self._replaying == seq:
                self._replaying = None

    def _path(self, seq: int, alarm: bool) -> Path:
        return self.folder / f"{seq:012d}{ALARM_SUFFIX if alarm else SUFFIX}"

    def _write(self, final: Path, data: bytes) -> None:
        temp = final.with_suffix(".tmp")
        try:
            with open(temp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temp, final)
        except OSError:
            temp.unlink(missing_ok=True)  # a half-written temp file must not hold the space
            raise
        self._sync_folder()

    def _sync_folder(self) -> None:
        """Make the rename itself durable."""
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
