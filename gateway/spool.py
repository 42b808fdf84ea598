"""Batches the telemetry store could not take wait here on disk, oldest first, until it can.

One file ("segment") per batch, named by a zero-padded sequence number. A segment is written
whole — temp file, fsync, rename, fsync of the folder — so a crash leaves the segment or nothing,
and it is removed only after the store has taken it. A new Spool on the same folder (after a
restart) finds the old segments, hands them out first and continues the numbering. A batch
older than every segment (one the writer held in memory while newer ones were spooled) can be put
in front: numbers start at 1 000 000 to leave room below. Only the sequence numbers stay in memory;
a segment is read when it is replayed.

Calls block (disk); callers run them in a worker thread. Puts may run in one thread while
another reads and removes the oldest segment.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections import deque
from collections.abc import Sequence
from pathlib import Path

import msgspec

from facility.model import Quality, Reading

log = logging.getLogger(__name__)

SUFFIX = ".seg"
FIRST_SEQ = 1_000_000  # the first number in an empty folder; lower ones are for `put(first=True)`
_NAME = re.compile(r"^(\d{12})\.seg$")
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


class Spool:
    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        for stale in folder.glob("*.tmp"):  # a put cut short by a crash: never acknowledged
            stale.unlink()
        found = sorted(int(m.group(1)) for p in folder.iterdir() if (m := _NAME.match(p.name)))
        self._waiting: deque[int] = deque(found)
        self._next = found[-1] + 1 if found else FIRST_SEQ
        self._lock = threading.Lock()  # guards _waiting and _next
        self._put_lock = threading.Lock()  # puts land in sequence order

    def __len__(self) -> int:
        """How many segments wait."""
        return len(self._waiting)

    def put(self, readings: Sequence[Reading], first: bool = False) -> int:
        """Write a batch as the newest segment (or with `first`, as the oldest); returns its
        sequence number once it is on disk."""
        data = pack(readings)
        with self._put_lock:
            with self._lock:
                first = first and bool(self._waiting)
                if first:
                    seq = self._waiting[0] - 1
                    if seq < 0:
                        raise OSError(f"no sequence number left before segment 0 in {self.folder}")
                else:
                    seq = self._next
                    self._next += 1
            final = self._path(seq)
            temp = final.with_suffix(".tmp")
            with open(temp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temp, final)
            self._sync_folder()
            with self._lock:
                if first:
                    self._waiting.appendleft(seq)
                else:
                    self._waiting.append(seq)
        return seq

    def oldest(self) -> tuple[int, list[Reading]] | None:
        """The oldest segment and its readings, or None when the spool is empty.

        A segment that cannot be read is moved aside as `<seq>.bad` (and logged) so that it cannot
        block the ones behind it; it stays on disk for a person to look at.
        """
        while True:
            with self._lock:
                if not self._waiting:
                    return None
                seq = self._waiting[0]
            path = self._path(seq)
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
        self._path(seq).unlink(missing_ok=True)
        self._forget(seq)

    def _forget(self, seq: int) -> None:
        with self._lock:
            if self._waiting and self._waiting[0] == seq:
                self._waiting.popleft()
            elif seq in self._waiting:
                self._waiting.remove(seq)

    def _path(self, seq: int) -> Path:
        return self.folder / f"{seq:012d}{SUFFIX}"

    def _sync_folder(self) -> None:
        """Make the rename itself durable."""
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
