"""The outcome journal: every rule outcome (a condition change, a schedule's occurrence) goes to a
file on local disk before rules.outcomes applies it to the ops store, so that an alarm raised while
the store is down is neither forgotten at a restart nor raised twice.

Layout of the journal folder:

- `journal`: append-only records, each framed as `<u32 length><u32 CRC-32><u64 seq>` followed by
  `length` bytes of MessagePack (a `ConditionEntry`, a `DueEntry` or a `Snapshot`); the CRC covers
  the sequence number and the payload. Sequence numbers grow by one per entry, for ever.
- `applied`: the sequence number of the last entry applied to the ops store, in two 16-byte slots
  (`<u64 seq><u32 CRC-32>`, written alternately and fsynced), so that a torn write loses at most
  the newer slot.

`append` only encodes the entry and buffers it (it runs on the engine's path); a writer task writes
and fsyncs everything buffered since its last round in one go (group commit), in a worker thread of
its own. An entry is handed to the ops store only once it is on disk (`written`), and `durable`
returns once everything appended so far is. After a crash, a torn last record (a CRC that does not
match) is cut off: it was never reported durable. Once every entry is applied and the file has
grown past `compact_bytes`, it is rewritten as one `Snapshot` of the conditions then active, so the
journal alone can always say which conditions were active before a stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import msgspec

log = logging.getLogger(__name__)

COMPACT_BYTES = 1 << 20  # rewrite the journal as a snapshot once it is this big and all of it applied
RETRY_MAX_S = 10.0  # the longest pause between attempts to write to a disk that fails

_FRAME = struct.Struct("<IIQ")  # payload length, CRC-32 of seq and payload, seq
_SEQ = struct.Struct("<Q")
_MARK = struct.Struct("<QI4x")  # applied seq, CRC-32 of it; one slot
_SYNC: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)  # the size is flushed with the data either way

T = TypeVar("T")


class ConditionEntry(msgspec.Struct, frozen=True, tag="condition"):
    """A condition change of rules.engine.Change, by rule id (the rule object is found again)."""

    rule: str
    device: str
    active: bool
    ts: int
    values: dict[str, Any]
    suppressed: bool = False
    spread: bool = False  # a point joined its text's lists: the alarm's text changes


class DueEntry(msgspec.Struct, frozen=True, tag="due"):
    """An occurrence of a preventive schedule (rules.schedules.Due), by schedule id."""

    schedule: str
    device: str | None
    ts: int
    reason_zh: str
    reason_en: str


class Snapshot(msgspec.Struct, frozen=True, tag="snapshot"):
    """What a compacted journal starts with: the conditions active when it was compacted."""

    active: list[tuple[str, str]]


Entry = ConditionEntry | DueEntry
_Record = ConditionEntry | DueEntry | Snapshot

_encoder = msgspec.msgpack.Encoder(enc_hook=str)  # a reading value of an odd type is kept as its text
_decoder = msgspec.msgpack.Decoder(_Record)


def _frame(seq: int, record: _Record) -> bytes:
    payload = _encoder.encode(record)
    return _FRAME.pack(len(payload), zlib.crc32(payload, zlib.crc32(_SEQ.pack(seq))), seq) + payload


def _frames(data: bytes) -> tuple[list[tuple[int, bytes]], int]:
    """The (seq, payload) of every whole record, and where the last one ends."""
    out: list[tuple[int, bytes]] = []
    at = 0
    while at + _FRAME.size <= len(data):
        length, crc, seq = _FRAME.unpack_from(data, at)
        end = at + _FRAME.size + length
        payload = data[at + _FRAME.size : end]
        if end > len(data) or zlib.crc32(payload, zlib.crc32(_SEQ.pack(seq))) != crc:
            break
        out.append((seq, payload))
        at = end
    return out, at


class Journal:
    """The journal of one rules service, in `folder` (created if missing)."""

    def __init__(self, folder: Path, *, compact_bytes: int = COMPACT_BYTES) -> None:
        self.folder = folder
        self._path = folder / "journal"
        self._compact_bytes = compact_bytes
        self._fd = -1
        self._mark_fd = -1
        self._size = 0  # bytes on disk
        self._seq = 0  # the last sequence number given
        self._durable = 0  # the last on disk
        self._applied = 0  # the last applied to the ops store
        self._active: set[tuple[str, str]] = set()  # (rule, device) of the conditions active, as appended
        self._buffer: list[bytes] = []  # framed records not written yet, in order
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._busy: asyncio.Future[Any] | None = None  # the disk operation under way: one at a time
        self._disk: ThreadPoolExecutor | None = None
        self.failure: str | None = None  # why the last write failed, until one succeeds
        self.writes = 0  # groups written and fsynced

    @property
    def active(self) -> frozenset[tuple[str, str]]:
        """(rule, device) of every condition active by the entries appended so far."""
        return frozenset(self._active)

    @property
    def size(self) -> int:
        """Bytes on disk and waiting to be written."""
        return self._size + sum(len(b) for b in self._buffer)

    def open(self) -> list[tuple[int, Entry]]:
        """Read the journal at start: the entries not applied yet, oldest first. Blocking (a small
        file, read once before anything runs)."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)  # alarms and who is notified: the service's alone
        (self.folder / "journal.tmp").unlink(missing_ok=True)  # a compaction cut short
        data = self._path.read_bytes() if self._path.exists() else b""
        frames, end = _frames(data)
        if end < len(data):
            log.warning(
                "outcome journal %s: cut off %d bytes of a record that was being written when the process stopped",
                self._path,
                len(data) - end,
            )
            os.truncate(self._path, end)
        self._applied = self._read_mark()
        pending: list[tuple[int, Entry]] = []
        last = 0
        for seq, payload in frames:
            last = seq
            try:
                record = _decoder.decode(payload)
            except msgspec.DecodeError as exc:
                log.error("outcome journal %s: entry %d cannot be read (%s); skipped", self._path, seq, exc)
                continue
            if isinstance(record, Snapshot):
                self._active = set(record.active)
                continue
            self._note(record)
            if seq > self._applied:
                pending.append((seq, record))
        self._seq = self._durable = max(last, self._applied)
        self._applied = min(self._applied, self._seq)
        created = not self._path.exists()
        self._fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._mark_fd = os.open(self.folder / "applied", os.O_RDWR | os.O_CREAT, 0o644)
        if created:
            _sync_dir(self.folder)
        self._size = end
        self._disk = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outcome journal")
        return pending

    def append(self, entry: Entry) -> int:
        """Journal an entry; returns its sequence number. Never waits: it is written with the next
        group, and `written(seq)` says when it is on disk."""
        self._seq += 1
        self._buffer.append(_frame(self._seq, entry))
        self._note(entry)
        self._start_writer()
        return self._seq

    async def durable(self) -> None:
        """Return once every entry appended so far is on disk (at once if it is)."""
        await self.written(self._seq)

    def settled(self) -> asyncio.Future[None] | None:
        """None when every entry appended so far is on disk; else a future that completes once
        they are. For a caller that cannot await: the MQTT acknowledgements."""
        if self._seq <= self._durable:
            return None
        return asyncio.ensure_future(self.durable())

    async def written(self, seq: int) -> None:
        """Return once entry `seq` is on disk."""
        if seq <= self._durable:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append((seq, waiter))
        self._start_writer()
        await waiter

    async def applied(self, seq: int) -> None:
        """Record that entry `seq` (and every one before it) is in the ops store; compact when all
        of the journal is and it has grown big. A disk that fails here is logged: the entry was
        applied, and applying it again after a restart is harmless."""
        self._applied = seq
        try:
            await self._on_disk(lambda: self._write_mark(seq), lambda _: None)
            if seq == self._seq and self._size >= self._compact_bytes:
                await self._compact()
        except OSError as exc:
            log.error("outcome journal %s: cannot record that entry %d is applied: %s", self.folder, seq, exc)

    async def close(self) -> None:
        """Write what is buffered, compact if everything is applied, and close the files."""
        if self._disk is None:
            return
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        try:
            await self._commit()
            if self._applied == self._seq and self._size > len(self._snapshot()):
                await self._compact()
        except OSError as exc:
            log.error(
                "outcome journal %s: %d entries could not be written at shutdown: %s",
                self.folder,
                len(self._buffer),
                exc,
            )
        while self._busy is not None:
            await asyncio.wait([self._busy])
        self._disk.shutdown()
        self._disk = None
        os.close(self._fd)
        os.close(self._mark_fd)

    def _note(self, entry: Entry) -> None:
        if isinstance(entry, ConditionEntry):
            key = (entry.rule, entry.device)
            if entry.active:
                self._active.add(key)
            else:
                self._active.discard(key)

    def _start_writer(self) -> None:
        self._wake.set()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_groups(), name="outcome journal writer")

    async def _write_groups(self) -> None:
        failures = 0
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._commit()
            except OSError as exc:
                if self.failure != str(exc):
                    log.error(
                        "outcome journal %s: cannot write (%s); outcomes are kept in memory meanwhile", self.folder, exc
                    )
                self.failure = str(exc)
                failures += 1
                await asyncio.sleep(min(RETRY_MAX_S, 0.1 * 2**failures))
                self._wake.set()
                continue
            if self.failure is not None:
                log.warning("outcome journal %s: writing again", self.folder)
            self.failure, failures = None, 0

    async def _commit(self) -> None:
        """Write and fsync every record buffered now, as one group."""
        while self._busy is not None:  # a compaction swaps the file: write to the new one
            await asyncio.wait([self._busy])
        if not self._buffer:
            return
        count, upto = len(self._buffer), self._seq
        data = b"".join(self._buffer)

        def done(written: int) -> None:
            del self._buffer[:count]
            self.writes += 1
            self._size += written
            self._durable = max(self._durable, upto)
            ready = [w for w in self._waiters if w[0] <= self._durable]
            self._waiters = [w for w in self._waiters if w[0] > self._durable]
            for _, waiter in ready:
                if not waiter.done():
                    waiter.set_result(None)

        await self._on_disk(lambda: self._write_group(data), done)

    async def _compact(self) -> None:
        while self._busy is not None:
            await asyncio.wait([self._busy])
        if self._applied != self._seq:
            return  # entries came meanwhile: they must not be rewritten away; compact another time
        snapshot = self._snapshot()  # taken with no wait before the rewrite starts: nothing comes between
        await self._on_disk(lambda: self._rewrite(snapshot), self._compacted)

    def _compacted(self, size: int) -> None:
        self._size = size

    def _snapshot(self) -> bytes:
        return _frame(self._applied, Snapshot(sorted(self._active)))

    async def _on_disk(self, work: Callable[[], T], then: Callable[[T], None]) -> T:
        """Run `work` in the journal's thread, one disk operation at a time; `then` takes its result
        on the loop, even when the caller is cancelled meanwhile (so that bookkeeping never
        disagrees with the file)."""
        assert self._disk is not None, "Journal.open() first"
        while self._busy is not None:
            await asyncio.wait([self._busy])
        future = asyncio.get_running_loop().run_in_executor(self._disk, work)
        self._busy = future

        def finished(f: asyncio.Future[T]) -> None:
            self._busy = None
            if not f.cancelled() and f.exception() is None:
                then(f.result())

        future.add_done_callback(finished)
        await asyncio.wait([future])
        return future.result()

    # In the journal's thread:

    def _write_group(self, data: bytes) -> int:
        start = self._size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
            _SYNC(self._fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, start)  # no half group left for the next one to follow
            raise
        return len(data)

    def _write_mark(self, seq: int) -> None:
        os.pwrite(self._mark_fd, _MARK.pack(seq, zlib.crc32(_SEQ.pack(seq))), (seq & 1) * _MARK.size)
        _SYNC(self._mark_fd)

    def _read_mark(self) -> int:
        path = self.folder / "applied"
        data = path.read_bytes() if path.exists() else b""
        best = 0
        for at in (0, _MARK.size):
            if len(data) >= at + _MARK.size:
                seq, crc = _MARK.unpack_from(data, at)
                if zlib.crc32(_SEQ.pack(seq)) == crc:
                    best = max(best, seq)
        return best

    def _rewrite(self, snapshot: bytes) -> int:
        tmp = self.folder / "journal.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, snapshot)
            _SYNC(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self._path)
        _sync_dir(self.folder)
        old, self._fd = self._fd, os.open(self._path, os.O_WRONLY | os.O_APPEND)
        os.close(old)
        return len(snapshot)


def _sync_dir(folder: Path) -> None:
    """Make a file created or renamed in `folder` survive a power cut."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
