"""The embedded telemetry store: one copy per reading, history raw and per bucket, pruning."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from facility.model import Quality, Reading
from facility.site import InfluxStore, Stores
from facility.store.factory import open_telemetry
from facility.store.influx import InfluxTelemetry
from facility.store.sqlite_telemetry import SqliteTelemetry
from tests.store_contract import assert_level_history

S = 1_000_000_000


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteTelemetry]:
    db = SqliteTelemetry(tmp_path / "telemetry.db")
    yield db
    db.close()


def test_a_reading_written_twice_is_stored_once(store: SqliteTelemetry) -> None:
    t = time.time_ns()
    batch = [
        Reading("pump-1", "pressure", 3.5, Quality.GOOD, t),
        Reading("pump-1", "pressure", 3.6, Quality.GOOD, t + 1),
    ]
    store.write(batch)
    store.write(batch)  # a replay after an outage
    samples = store.history("pump-1", "pressure", t, t + S)
    assert [(s.ts, s.mean, s.count) for s in samples] == [(t, 3.5, 1), (t + 1, 3.6, 1)]


def test_history_raw_and_per_bucket_aligned_to_the_range_start(store: SqliteTelemetry) -> None:
    start = (time.time_ns() // S - 600) * S + 250_000_000  # not on a whole second
    store.write([Reading("tank-1", "level", float(k), Quality.GOOD, start + k * S) for k in range(10)])
    store.write(
        [
            Reading("tank-1", "level", 77.0, Quality.GOOD, start + 10 * S),  # just past the range
            Reading("tank-1", "level", -1.0, Quality.GOOD, start - 1),  # just before it
            Reading("tank-2", "level", 50.0, Quality.GOOD, start + 2 * S),  # another device
            Reading("tank-1", "volume", 50.0, Quality.GOOD, start + 2 * S),  # another point
        ]
    )
    assert_level_history(store, start)


def test_history_holds_good_readings_only(store: SqliteTelemetry) -> None:
    t = time.time_ns()
    store.write(
        [
            Reading("sump-1", "level", 1.0, Quality.GOOD, t),
            Reading("sump-1", "level", 900.0, Quality.BAD, t + 1),
            Reading("sump-1", "level", 800.0, Quality.STALE, t + 2),
            Reading("sump-1", "level", None, Quality.NO_COMM, t + 3),
            Reading("sump-1", "level", 3.0, Quality.GOOD, t + 4),
        ]
    )
    assert [s.mean for s in store.history("sump-1", "level", t, t + S)] == [1.0, 3.0]
    [bucket] = store.history("sump-1", "level", t, t + S, bucket_s=1.0)
    assert (bucket.mean, bucket.min, bucket.max, bucket.count) == (2.0, 1.0, 3.0, 2)


def test_prune_deletes_what_is_older_than_the_retention_and_keeps_the_rest(tmp_path: Path) -> None:
    store = SqliteTelemetry(tmp_path / "telemetry.db", retention_s=3600)
    now = time.time_ns()
    old = [Reading(f"lift-{k % 7}", "floor", k, Quality.GOOD, now - 7200 * S + k) for k in range(25_001)]
    recent = [Reading("lift-1", "floor", k, Quality.GOOD, now - 1800 * S + k) for k in range(2)]
    store.write(recent + old)  # writes never prune: the writer calls prune off the event loop
    assert len(store.history("lift-1", "floor", 0, now)) == len(recent) + 25_001 // 7 + 1
    assert store.prune(now) == 25_001  # in chunks, each its own transaction
    assert [s.ts for s in store.history("lift-1", "floor", 0, now)] == [r.ts for r in recent]
    store.close()


def test_the_factory_opens_the_store_the_site_file_names(tmp_path: Path) -> None:
    store = open_telemetry(Stores(telemetry="var/t.db", retention=7200), tmp_path, "t")
    assert isinstance(store, SqliteTelemetry)  # a relative path is under the site's folder
    assert store.retention_s == 7200
    store.close()
    assert (tmp_path / "var" / "t.db").exists()
    influx = open_telemetry(Stores(telemetry=InfluxStore(url="http://127.0.0.1:8086", token_env=None)), tmp_path, "t")
    assert isinstance(influx, InfluxTelemetry)
    influx.close()
