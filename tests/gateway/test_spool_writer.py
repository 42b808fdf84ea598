"""The disk spool, and the telemetry writer against real stores: VictoriaMetrics stopped and
started under load, a gateway restarted over its spool, InfluxDB 1.6 refusing old points."""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from facility.aio import cancel_all
from facility.model import Quality, Reading
from facility.netutil import free_port
from facility.site import InfluxStore
from facility.store.influx import InfluxTelemetry
from facility.store.sqlite_telemetry import SqliteTelemetry
from facility.store.telemetry import Sample, StoreUnavailable
from gateway.spool import Spool, SpoolFull, pack
from gateway.writer import MAX_PENDING, TelemetryWriter
from testsupport.influx_servers import Influx1, VictoriaMetrics

S = 1_000_000_000
MS = 1_000_000
# Batches the writer may hold in memory at once when readings pour in (50 000/s): a full buffer,
# MAX_PENDING batches waiting, one in flight, and what arrives while a spool write waits on fsync
# (that can take 100 ms). The tests feed four times as much or more.
FLAT = 10


def series(device: str, n: int, start: int, first: int = 0, points: int = 10) -> list[Reading]:
    """Readings i = first .. first+n-1, one millisecond apart (VictoriaMetrics keeps ms)."""
    return [Reading(device, f"p{i % points}", float(i), Quality.GOOD, start + i * MS) for i in range(first, first + n)]


def now_ms() -> int:
    return time.time_ns() // MS * MS


def store_at(url: str) -> InfluxTelemetry:
    return InfluxTelemetry(InfluxStore(url=url, bucket="estate", token_env=None, timeout=2.0), site="t")


def nothing_listening() -> InfluxTelemetry:
    """A store whose server is down: nothing listens on its port."""
    return store_at(f"http://127.0.0.1:{free_port()}")


async def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:g}s waiting for {what}")
        await asyncio.sleep(0.05)


async def exported_times(vm: VictoriaMetrics, device: str, expected: set[int], timeout: float = 30.0) -> list[int]:
    """Every sample's time (ms) of a device's `num` series, once all expected times are there."""
    found: list[int] = []

    def fetch() -> bool:
        nonlocal found
        found = [ts for s in vm.export(f'__name__="telemetry_num",device="{device}"') for ts in s["timestamps"]]
        return expected <= set(found)

    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(fetch):
        if time.monotonic() > deadline:
            break  # the caller's assertions say what is missing
        await asyncio.sleep(0.2)
    return found


# --- the spool ----------------------------------------------------------------------------------


def test_spool_round_trip_keeps_every_value_type_and_quality(tmp_path: Path) -> None:
    batch = [
        Reading("pump-1", "pressure", 3.25, Quality.GOOD, 1),
        Reading("pump-1", "whole", 3.0, Quality.GOOD, 2),
        Reading("pump-1", "starts", 7, Quality.STALE, 3),
        Reading("pump-1", "big", 2**63 + 1, Quality.GOOD, 4),
        Reading("pump-1", "running", True, Quality.GOOD, 5),
        Reading("pump-1", "fault", False, Quality.BAD, 6),
        Reading("pump-1", "flow", None, Quality.NO_COMM, 7),
        Reading("泵-1", "mode", 'auto "手动"\n\\', Quality.GOOD, 8),
        Reading("pump-1", "temp", math.inf, Quality.BAD, 9),
    ]
    spool = Spool(tmp_path)
    spool.put(batch)
    segment = spool.oldest()
    assert segment is not None
    seq, back = segment
    assert back == batch
    assert [type(r.value) for r in back] == [type(r.value) for r in batch]
    assert [type(r.quality) for r in back] == [Quality] * len(batch)

    spool.put([Reading("pump-1", "level", math.nan, Quality.BAD, 10)])
    spool.remove(seq)
    segment = spool.oldest()
    assert segment is not None
    [nan] = segment[1]
    assert math.isnan(nan.value)  # type: ignore[arg-type]


def test_a_new_spool_on_the_folder_replays_old_segments_first_and_continues_the_numbers(tmp_path: Path) -> None:
    first = Spool(tmp_path)
    batches = [series("pump-1", 3, 0, first=3 * k) for k in range(4)]
    for batch in batches[:3]:
        first.put(batch)
    segment = first.oldest()
    assert segment is not None
    first.remove(segment[0])  # the store took the oldest
    (tmp_path / "000001000007.tmp").write_bytes(b"half a segment")  # a put cut short by a crash

    second = Spool(tmp_path)  # the process restarted
    assert len(second) == 2
    assert second.put(batches[3]) == 1_000_003  # numbering continues after the newest segment
    assert sorted(p.name for p in tmp_path.iterdir()) == ["000001000001.seg", "000001000002.seg", "000001000003.seg"]
    replayed = []
    while (segment := second.oldest()) is not None:
        replayed.append(segment[1])
        second.remove(segment[0])
    assert replayed == batches[1:]
    assert len(second) == 0
    assert list(tmp_path.iterdir()) == []


def test_an_unreadable_segment_is_moved_aside_and_does_not_block_the_rest(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.put(series("pump-1", 2, 0))
    spool.put(series("pump-1", 2, 0, first=2))
    (tmp_path / "000001000000.seg").write_bytes(b"[[not json")
    segment = Spool(tmp_path).oldest()
    assert segment is not None
    assert segment[1] == series("pump-1", 2, 0, first=2)
    assert (tmp_path / "000001000000.bad").read_bytes() == b"[[not json"  # kept for a person


def test_a_batch_older_than_the_spool_goes_in_front_and_stays_there_after_a_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    older, old, new = (series("pump-1", 2, 0, first=2 * k) for k in range(3))
    spool.put(new)
    spool.put(old, first=True)
    spool.put(older, first=True)
    for reopened in (spool, Spool(tmp_path)):
        segment = reopened.oldest()
        assert segment is not None
        assert segment[1] == older
    replayed = []
    while (segment := spool.oldest()) is not None:
        replayed.append(segment[1])
        spool.remove(segment[0])
    assert replayed == [older, old, new]


# --- the writer ---------------------------------------------------------------------------------


@pytest.mark.timeout(240)
async def test_a_30_s_outage_under_load_loses_nothing_and_duplicates_nothing(tmp_path: Path) -> None:
    (tmp_path / "vm").mkdir()
    own = VictoriaMetrics(tmp_path / "vm")
    await asyncio.to_thread(own.start)
    try:
        spool = Spool(tmp_path / "spool")
        writer = TelemetryWriter(store_at(own.url), spool, retry_first_s=0.5, retry_max_s=4.0)
        running = asyncio.create_task(writer.run())
        start = now_ms()
        fed = 0

        async def feed() -> None:  # 2000 readings a second by the clock, however late each wake-up is
            nonlocal fed
            began = time.monotonic()
            while True:
                due = int((time.monotonic() - began) * 2000)
                writer.add(series("feeder", due - fed, start, first=fed))
                fed = due
                await asyncio.sleep(0.01)

        feeder = asyncio.create_task(feed())
        await until(lambda: writer.written > 0, 10, "the first writes")

        await asyncio.to_thread(own.stop)
        await until(lambda: writer.spooled > 0, 15, "the writer to spool")
        peak = 0
        outage_ends = time.monotonic() + 30  # the outage lasts 30 s, readings keep coming
        while time.monotonic() < outage_ends:
            peak = max(peak, writer.buffered)
            await asyncio.sleep(0.1)
        assert len(spool) > 0
        # Held on disk, not in memory: at 2000 readings/s little arrives during a spool write.
        assert peak <= (MAX_PENDING + 2) * writer.batch_size < fed / 3
        await asyncio.to_thread(own.start)  # same port, same data

        await cancel_all([feeder])
        await writer.flush()
        await until(lambda: len(spool) == 0 and writer.buffered == 0, 90, "the spool to drain")

        expected = {(start + i * MS) // MS for i in range(fed)}
        times = await exported_times(own, "feeder", expected)
        assert len(times) == fed  # every reading fed is there exactly once
        assert set(times) == expected
        assert writer.replayed == writer.spooled > 0
        assert writer.dead_lettered == 0
        await cancel_all([running])
    finally:
        own.stop()


async def test_a_restarted_gateway_replays_what_the_stopped_one_spooled(vm: VictoriaMetrics, tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    start = now_ms()
    before = series("restart", 3000, start)
    first = TelemetryWriter(nothing_listening(), Spool(folder), batch_size=500)
    running = asyncio.create_task(first.run())
    for i in range(0, 2000, 250):
        first.add(before[i : i + 250])
        await asyncio.sleep(0)
    await until(lambda: first.spooled > 0, 15, "the first writer to spool")
    first.add(before[2000:])  # still in memory when the gateway stops
    await cancel_all([running])  # the gateway stops; the store is still down
    assert first.spooled == len(before) and first.buffered == 0 and first.written == 0

    spool = Spool(folder)  # the gateway starts again, the store is back
    assert len(spool) == len(list(folder.glob("*.seg"))) > 0
    second = TelemetryWriter(store_at(vm.url), spool, batch_size=500)
    running = asyncio.create_task(second.run())
    after = series("restart", 500, start, first=3000)
    second.add(after)
    await until(lambda: len(spool) == 0 and second.buffered == 0, 30, "the replay")
    assert second.replayed == len(before) + second.spooled  # what came after waited behind it

    expected = {r.ts // MS for r in before + after}
    times = await exported_times(vm, "restart", expected)
    assert sorted(times) == sorted(expected)
    await cancel_all([running])


async def test_readings_the_store_refuses_are_dead_lettered_and_the_rest_written(
    influx: Influx1, tmp_path: Path
) -> None:
    influx.execute('CREATE DATABASE "rp1h" WITH DURATION 1h')
    store = InfluxTelemetry(InfluxStore(url=influx.url, bucket="rp1h", write_api="v1", token_env=None), site="t")
    letters: list[tuple[str, str, str, str]] = []
    spool = Spool(tmp_path / "spool")
    writer = TelemetryWriter(store, spool, dead_letter=lambda *letter: letters.append(letter))
    running = asyncio.create_task(writer.run())
    now = time.time_ns()
    current = [Reading("sump-2", "level", float(i), Quality.GOOD, now - i * S) for i in range(20)]
    old = [Reading("sump-2", "level", 50.0 + i, Quality.GOOD, now - 2 * 86400 * S - i * S) for i in range(3)]
    writer.add(current[:10] + old + current[10:])
    await writer.flush()
    await cancel_all([running])

    assert [(source, key) for source, key, _, _ in letters] == [("telemetry", "sump-2/level")] * 3
    assert all("retention policy" in reason for _, _, reason, _ in letters)
    assert [json.loads(payload) for _, _, _, payload in letters] == [
        {"device": "sump-2", "point": "level", "value": r.value, "quality": "good", "ts": r.ts} for r in old
    ]
    assert (writer.dead_lettered, writer.written, writer.spooled, len(spool)) == (3, 20, 0, 0)
    rows = influx.select("rp1h", "SELECT num FROM telemetry WHERE device = 'sump-2'")
    assert sorted(rows) == sorted([r.ts, r.value] for r in current)


async def test_add_stays_an_append_and_memory_stays_flat_while_the_store_is_down(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    writer = TelemetryWriter(nothing_listening(), spool, batch_size=1000)
    running = asyncio.create_task(writer.run())
    peak = 0
    for k in range(100):  # 100 000 readings at about 50 000 a second
        writer.add(series("flood", 1000, 0, first=1000 * k))
        peak = max(peak, writer.buffered)
        await asyncio.sleep(0.02)
    assert peak <= FLAT * writer.batch_size
    await writer.flush()
    assert writer.buffered == 0 and writer.spooled == 100_000 and writer.written == 0
    await cancel_all([running])

    reread = Spool(tmp_path / "spool")
    held = 0
    while (segment := reread.oldest()) is not None:
        held += len(segment[1])
        reread.remove(segment[0])
    assert held == 100_000


class ControlledStore:
    """A real SQLite store behind a switch and a gate, to play a store that is down (it raises
    StoreUnavailable, as a real one does) or slow (a write waits while the gate is shut).
    Records the first value of every batch it stores, to show the order batches arrive in."""

    quick_writes = False  # a write may wait at the gate: it must run in a worker thread

    def __init__(self, store: SqliteTelemetry) -> None:
        self.store = store
        self.down = False
        self.gate = threading.Event()
        self.gate.set()
        self.waiting = threading.Event()  # a write waits at the shut gate
        self.firsts: list[float] = []

    def write(self, readings: Sequence[Reading]) -> None:
        if self.down:
            raise StoreUnavailable("switched off by the test")
        if not self.gate.is_set():
            self.waiting.set()
            assert self.gate.wait(60), "the test never opened the gate"
        self.firsts.append(readings[0].value)  # type: ignore[arg-type]
        self.store.write(readings)

    def history(
        self, device: str, point: str, start_ns: int, end_ns: int, bucket_s: float | None = None
    ) -> list[Sample]:
        return self.store.history(device, point, start_ns, end_ns, bucket_s)

    def prune(self, now_ns: int) -> int:
        return self.store.prune(now_ns)

    def close(self) -> None:
        self.store.close()


async def test_new_batches_wait_behind_the_spool_so_the_store_gets_them_in_order(tmp_path: Path) -> None:
    store = ControlledStore(SqliteTelemetry(tmp_path / "telemetry.db"))
    spool = Spool(tmp_path / "spool")
    writer = TelemetryWriter(store, spool, batch_size=1000, retry_first_s=0.05, retry_max_s=0.05)
    running = asyncio.create_task(writer.run())
    start = now_ms()
    store.down = True
    for k in range(5):
        writer.add(series("order", 1000, start, first=1000 * k, points=1))
    await until(lambda: writer.spooled == 5000, 10, "the outage to fill the spool")
    store.gate.clear()
    store.down = False  # back, but the first replay waits at the gate
    await until(store.waiting.is_set, 10, "the first replay")
    for k in range(5, 10):
        writer.add(series("order", 1000, start, first=1000 * k, points=1))
    try:
        await until(lambda: writer.spooled == 10_000, 10, "new batches to queue behind the spool")
    finally:
        store.gate.set()
    await writer.flush()
    await until(lambda: len(spool) == 0, 10, "the spool to drain")
    await cancel_all([running])
    assert store.firsts[0] == 0.0 and store.firsts == sorted(set(store.firsts))  # oldest first
    assert writer.written == writer.replayed == 10_000
    stored = store.history("order", "p0", start, start + 10_000 * MS)
    assert [s.mean for s in stored] == [float(i) for i in range(10_000)]
    store.close()


async def test_a_slow_store_gets_batches_from_the_spool_in_order_and_memory_stays_flat(tmp_path: Path) -> None:
    store = ControlledStore(SqliteTelemetry(tmp_path / "telemetry.db"))
    store.gate.clear()
    spool = Spool(tmp_path / "spool")
    writer = TelemetryWriter(store, spool, batch_size=1000)
    running = asyncio.create_task(writer.run())
    start = now_ms()
    try:
        peak = 0
        for k in range(40):
            writer.add(series("slow", 1000, start, first=1000 * k, points=1))
            peak = max(peak, writer.buffered)
            await asyncio.sleep(0.02)
        await until(lambda: len(spool) > 0, 10, "batches to go to the spool")
        assert peak <= FLAT * writer.batch_size
        assert writer.written == 0
    finally:
        store.gate.set()
    await writer.flush()
    await until(lambda: len(spool) == 0, 30, "the spool to drain")
    await cancel_all([running])

    # Oldest first: batches from memory and spool segments (which hold what came in during one
    # fsync, so their sizes vary) arrive in the order their readings were added.
    assert store.firsts[0] == 0.0 and store.firsts == sorted(set(store.firsts))
    assert writer.written == 40_000 and writer.replayed == writer.spooled > 0
    stored = store.history("slow", "p0", start, start + 40_000 * MS)
    assert [s.mean for s in stored] == [float(i) for i in range(40_000)]
    store.close()


async def test_the_writer_deletes_what_is_past_the_retention_and_keeps_writing(tmp_path: Path) -> None:
    store = SqliteTelemetry(tmp_path / "telemetry.db", retention_s=3600)
    now = now_ms()
    store.write(series("old", 30_000, now - 7200 * 1000 * MS))  # two hours old: past the retention
    writer = TelemetryWriter(store, Spool(tmp_path / "spool"))
    running = asyncio.create_task(writer.run())
    try:
        writer.add(series("new", 100, now))
        await writer.flush()
        await until(lambda: not store.history("old", "p0", 0, now * 2), 30, "the old readings to go")
        assert len(store.history("new", "p0", 0, now * 2)) == 10
    finally:
        await cancel_all([running])
        store.close()


# --- a spool with a size limit, and readings rules judge ---------------------------------------


def test_a_full_spool_drops_the_oldest_routine_telemetry_and_never_an_alarm_reading(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    one = len(pack(series("pump-1", 100, 0)))
    spool = Spool(tmp_path, limit_bytes=int(one * 3.5))  # room for three routine batches
    for k in range(3):
        spool.put(series("pump-1", 100, k * 1000 * MS, first=100 * k))
    spool.put(series("sump-1", 100, 5 * S), alarm=True)  # makes room: the oldest routine batch goes
    assert spool.dropped_readings == 100 and spool.bytes <= spool.limit_bytes
    assert "dropped the oldest routine telemetry, 100 readings from 1970-01-01T00:00:00Z" in caplog.text
    for k in range(4):  # alarm batches beyond the limit: routine ones give way, then the limit does
        spool.put(series("sump-1", 100, (6 + k) * S), alarm=True)
    assert spool.dropped_readings == 300 and spool.bytes > spool.limit_bytes  # nothing routine left
    with pytest.raises(SpoolFull):  # no room for routine telemetry while alarms fill the spool
        spool.put(series("pump-1", 100, 20 * S, first=300))
    assert spool.dropped_readings == 300

    replayed: list[list[Reading]] = []
    while (segment := spool.oldest()) is not None:
        replayed.append(segment[1])
        spool.remove(segment[0])
    assert replayed == [series("sump-1", 100, k * S) for k in range(5, 10)]  # every alarm batch, in order


def test_a_bulk_batch_larger_than_the_whole_spool_is_refused(tmp_path: Path) -> None:
    spool = Spool(tmp_path, limit_bytes=100)
    with pytest.raises(SpoolFull):
        spool.put(series("pump-1", 100, 0))
    assert spool.put(series("sump-1", 100, 0), alarm=True) >= 0  # an alarm batch is never refused


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB file system (tmpfs) that fills up; the suite runs as root, as CI does."""
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode:
        pytest.fail(f"cannot mount a small tmpfs (the test needs root): {mounted.stderr.decode()}", pytrace=False)
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


async def test_a_full_disk_drops_routine_telemetry_counted_and_keeps_memory_and_alarm_readings(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The store is down and the spool's disk fills: memory stays bounded, the routine readings
    given up are counted and logged, and every reading a rule judges is on disk."""
    spool = Spool(small_disk / "spool")  # no size limit: only the disk stops it
    writer = TelemetryWriter(
        nothing_listening(), spool, batch_size=500, alarm_points=lambda: frozenset({("sump-1", "level")})
    )
    running = asyncio.create_task(writer.run())
    fed_alarm = 0
    peak = 0
    start = now_ms()
    try:
        for k in range(60):  # 60 x 2000 routine readings is several times what 1 MiB holds
            writer.add(series("pump-1", 2000, start, first=2000 * k))
            writer.add([Reading("sump-1", "level", float(k), Quality.GOOD, start + k * MS)])
            fed_alarm += 1
            waiter = writer.settled()
            if waiter is not None:
                await asyncio.wait_for(waiter, 15)  # safe means: on disk, or dropped and counted
            peak = max(peak, writer.buffered)
        await until(lambda: writer.dropped > 0, 15, "routine telemetry to be dropped")
    finally:
        await cancel_all([running])
    assert peak <= 3 * 2001  # held on disk or dropped, not piled up in memory
    assert writer.dropped + writer.spooled >= 60 * 2000  # every routine reading: spooled or counted
    assert "routine" in caplog.text and "dropped" in caplog.text
    levels: list[float] = []
    while (segment := spool.oldest()) is not None:
        levels += [float(r.value) for r in segment[1] if r.device == "sump-1"]  # type: ignore[arg-type]
        spool.remove(segment[0])
    assert sorted(levels) == [float(k) for k in range(fed_alarm)]  # not one alarm reading lost


async def test_settled_completes_only_once_the_store_or_the_disk_has_the_readings(tmp_path: Path) -> None:
    store = SqliteTelemetry(tmp_path / "telemetry.db")
    writer = TelemetryWriter(store, Spool(tmp_path / "spool"))
    running = asyncio.create_task(writer.run())
    try:
        assert writer.settled() is None  # nothing added: nothing to wait for
        start = now_ms()
        writer.add(series("pump-1", 10, start))
        waiter = writer.settled()
        assert waiter is not None and not waiter.done()
        await asyncio.wait_for(waiter, 5)
        assert writer.written == 10  # completed because the store took them ...
        assert len(store.history("pump-1", "p0", start, start + S)) == 1  # ... and they are there
    finally:
        await cancel_all([running])
        store.close()

    down = TelemetryWriter(nothing_listening(), Spool(tmp_path / "spool-2"))
    running = asyncio.create_task(down.run())
    try:
        down.add(series("pump-1", 10, now_ms()))
        waiter = down.settled()
        assert waiter is not None
        await asyncio.wait_for(waiter, 15)
        assert down.spooled == 10 and list((tmp_path / "spool-2").glob("*.seg"))  # on disk
    finally:
        await cancel_all([running])
