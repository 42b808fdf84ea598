"""The InfluxDB store against real servers: VictoriaMetrics (v2 write API; it cannot give history)
and InfluxDB 1.6 (`/write`, InfluxQL `/query`, retention policies that refuse old points)."""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest

from facility.model import Quality, Reading
from facility.netutil import free_port
from facility.site import InfluxStore
from facility.store.influx import InfluxTelemetry
from facility.store.telemetry import BatchRejected, HistoryUnavailable, StoreUnavailable
from tests.store_contract import assert_level_history
from testsupport.influx_servers import Influx1, Unreadable, VictoriaMetrics
from testsupport.servers import poll

S = 1_000_000_000
MS = 1_000_000


def v1_store(influx: Influx1, db: str, duration: str = "INF") -> InfluxTelemetry:
    influx.execute(f'CREATE DATABASE "{db}" WITH DURATION {duration}')
    return InfluxTelemetry(InfluxStore(url=influx.url, bucket=db, write_api="v1", token_env=None), site="t")


def now_ms() -> int:
    """Now, on a whole millisecond: VictoriaMetrics keeps milliseconds."""
    return time.time_ns() // MS * MS


def by_name_and_point(series: list[dict[str, Any]]) -> dict[tuple[str, str], list[tuple[int, float]]]:
    found: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for s in series:
        key = (s["metric"]["__name__"], s["metric"]["point"])
        found.setdefault(key, []).extend(zip(s["timestamps"], s["values"], strict=True))
    return found


def test_v2_writes_land_in_victoria_metrics_one_field_per_value_type(vm: VictoriaMetrics) -> None:
    t = now_ms()
    store = InfluxTelemetry(InfluxStore(url=vm.url, bucket="estate", token_env=None), site="t")
    store.write(
        [
            Reading("pump-v2", "pressure", 3.25, Quality.GOOD, t),
            Reading("pump-v2", "starts", 7, Quality.GOOD, t),
            Reading("pump-v2", "running", True, Quality.GOOD, t),
            Reading("pump-v2", "fault", False, Quality.STALE, t),
            Reading("pump-v2", "mode", "auto", Quality.GOOD, t),
            Reading("pump-v2", "flow", None, Quality.NO_COMM, t),
            Reading("pump-v2", "level", math.nan, Quality.GOOD, t),
            Reading("pump-v2", "temp", math.inf, Quality.GOOD, t),
        ]
    )
    store.close()
    wanted = 8 + 2 + 2 + 1  # a quality series per reading; num x2, flag x2, text x1
    series = poll(lambda: vm.export('device="pump-v2"'), lambda s: len(s) >= wanted)
    found = by_name_and_point(series)

    assert found[("telemetry_num", "pressure")] == [(t // MS, 3.25)]
    assert found[("telemetry_num", "starts")] == [(t // MS, 7)]
    assert found[("telemetry_flag", "running")] == [(t // MS, 1)]
    assert found[("telemetry_flag", "fault")] == [(t // MS, 0)]
    # VictoriaMetrics keeps numbers only: a string field arrives as a series at the reading's time
    # (its text is checked on InfluxDB below).
    assert [ts for ts, _ in found[("telemetry_text", "mode")]] == [t // MS]
    points = ["pressure", "starts", "running", "fault", "mode", "flow", "level", "temp"]
    assert {p for name, p in found if name == "telemetry_quality"} == set(points)
    # No value field for a missing value, nor for one InfluxDB cannot hold (NaN, inf): quality only.
    for point in ("flow", "level", "temp"):
        assert [name for name, p in found if p == point] == ["telemetry_quality"]
    assert len(found) == wanted


def test_a_reading_written_twice_is_there_once(vm: VictoriaMetrics) -> None:
    t = now_ms()
    store = InfluxTelemetry(InfluxStore(url=vm.url, bucket="estate", token_env=None), site="t")
    batch = [Reading("pump-twice", "pressure", 1.0 + i, Quality.GOOD, t + i * MS) for i in range(50)]
    store.write(batch)
    # The replay of the same batch, with one new reading that shows when the request is visible.
    marker = Reading("pump-twice", "pressure", 99.0, Quality.GOOD, t + 50 * MS)
    store.write([*batch, marker])
    store.close()
    series = poll(
        lambda: vm.export('__name__="telemetry_num",device="pump-twice"'),
        lambda s: any(marker.ts // MS in x["timestamps"] for x in s),
    )
    [only] = series
    assert only["timestamps"] == [r.ts // MS for r in [*batch, marker]]
    assert only["values"] == [r.value for r in [*batch, marker]]


def test_line_protocol_keeps_values_quality_and_odd_names_on_influxdb(influx: Influx1) -> None:
    store = v1_store(influx, "schema")
    t = time.time_ns()
    odd = "pump b2,1=x"  # a space, a comma and an equals sign must be escaped in a tag
    store.write(
        [
            Reading(odd, "pressure", 3.25, Quality.GOOD, t),
            Reading(odd, "running", True, Quality.GOOD, t),
            Reading(odd, "mode", 'say "hi" \\ back', Quality.STALE, t),
            Reading(odd, "flow", None, Quality.NO_COMM, t),
            Reading(odd, "level", math.nan, Quality.GOOD, t),
        ]
    )
    store.close()
    rows = influx.select("schema", "SELECT point, num, flag, text, quality FROM telemetry WHERE device = 'pump b2,1=x'")
    assert sorted(row[1:] for row in rows) == [
        ["flow", None, None, None, "no_comm"],
        ["level", None, None, None, "bad"],  # NaN cannot be stored: quality bad, no value
        ["mode", None, None, 'say "hi" \\ back', "stale"],
        ["pressure", 3.25, None, None, "good"],
        ["running", None, True, None, "good"],
    ]
    assert all(row[0] == t for row in rows)
    fields = influx.select("schema", "SHOW FIELD KEYS FROM telemetry")
    assert sorted(fields) == [["flag", "boolean"], ["num", "float"], ["quality", "string"], ["text", "string"]]


def test_history_raw_and_downsampled_with_influxql(influx: Influx1) -> None:
    store = v1_store(influx, "history")
    start = (time.time_ns() // S - 600) * S + 250 * MS  # not on a whole second: buckets follow it
    readings = [Reading("tank-1", "level", float(k), Quality.GOOD, start + k * S) for k in range(10)]
    readings += [
        Reading("tank-1", "level", 1000.0, Quality.BAD, start + 1 * S + 1),  # never in history
        Reading("tank-1", "level", 500.0, Quality.STALE, start + 4 * S + 1),
        Reading("tank-2", "level", -5.0, Quality.GOOD, start + 2 * S),  # another device
        Reading("tank-1", "level", 77.0, Quality.GOOD, start + 10 * S),  # just past the range
        Reading("tank-1", "alarm", True, Quality.GOOD, start + 3 * S),
        Reading("tank-1", "state", "it's \\ full", Quality.GOOD, start + 3 * S),
    ]
    store.write(readings)

    assert_level_history(store, start)
    assert [s.mean for s in store.history("tank-1", "alarm", start, start + 10 * S)] == [True]
    assert [s.mean for s in store.history("tank-1", "state", start, start + 10 * S)] == ["it's \\ full"]
    assert store.history("tank-1", "it's' OR ''='", start, start + 10 * S) == []  # quoted, not injected
    store.close()


def test_estates_sharing_a_database_read_their_own_history(influx: Influx1) -> None:
    """Two estates, one InfluxDB database, the same device id: each estate's history holds its own
    readings, and the readings written before they carried a site (no `site` tag), which belonged
    to the database's one estate then."""
    influx.execute('CREATE DATABASE "shared"')
    config = InfluxStore(url=influx.url, bucket="shared", write_api="v1", token_env=None)
    east, west = InfluxTelemetry(config, site="east"), InfluxTelemetry(config, site="west")
    start = (time.time_ns() // S - 600) * S
    east.write([Reading("pump-1", "pressure", 0.4, Quality.GOOD, start + k * S) for k in range(3)])
    west.write([Reading("pump-1", "pressure", 0.9, Quality.GOOD, start + k * S) for k in range(5)])
    before_tags = f'telemetry,device=pump-1,point=pressure num=0.1,quality="good" {start - S}'  # no site
    written = httpx.post(f"{influx.url}/write", params={"db": "shared", "precision": "ns"}, content=before_tags)
    assert written.status_code == 204, written.text

    assert [s.mean for s in east.history("pump-1", "pressure", start - S, start + 10 * S)] == [0.1, 0.4, 0.4, 0.4]
    assert [s.mean for s in west.history("pump-1", "pressure", start, start + 10 * S)] == [0.9] * 5
    east.close()
    west.close()


def test_victoria_metrics_cannot_give_history_and_the_store_says_so(vm: VictoriaMetrics) -> None:
    """VictoriaMetrics keeps the numbers of what it is sent, and nothing else: a good and a bad
    reading arrive with the same quality (0). History from it would show bad values as good, so
    it is refused, naming VictoriaMetrics and why, raw and bucketed alike."""
    t = now_ms()
    store = InfluxTelemetry(InfluxStore(url=vm.url, bucket="estate", token_env=None), site="t")
    store.write(
        [
            Reading("tank-vm", "level", 1.0, Quality.GOOD, t),
            Reading("tank-vm", "level", 1000.0, Quality.BAD, t + MS),
        ]
    )
    series = poll(lambda: vm.export('__name__="telemetry_quality",device="tank-vm"'), lambda s: len(s) >= 1)
    assert by_name_and_point(series)[("telemetry_quality", "level")] == [(t // MS, 0), (t // MS + 1, 0)]
    for bucket in (None, 1.0):
        with pytest.raises(HistoryUnavailable) as caught:
            store.history("tank-vm", "level", t - S, t + S, bucket)
        assert caught.value.store == f"VictoriaMetrics at {vm.url}"
        assert "runs no InfluxQL" in caught.value.reason and "quality" in caught.value.reason
    store.close()


def test_history_from_a_database_that_is_not_there_names_the_store_and_the_reason(influx: Influx1) -> None:
    store = InfluxTelemetry(InfluxStore(url=influx.url, bucket="never-made", write_api="v1", token_env=None), site="t")
    with pytest.raises(HistoryUnavailable) as caught:
        store.history("tank-1", "level", 0, time.time_ns())
    store.close()
    assert caught.value.store == f"InfluxDB at {influx.url}"
    assert "database not found: never-made" in caught.value.reason


def _answer(columns: list[str], *rows: list[Any]) -> bytes:
    """A /query answer of one series, as InfluxDB would lay it out."""
    series = {"name": "telemetry", "columns": columns, "values": list(rows)}
    return json.dumps({"results": [{"statement_id": 0, "series": [series]}]}).encode()


RAW = ["time", "num", "flag", "text"]
BUCKETS = ["time", "mean", "min", "max", "count"]


@pytest.mark.parametrize(
    ("body", "bucket_s", "words"),
    [
        pytest.param(
            b"<html><body><h1>502 Bad Gateway</h1></body></html>",
            None,
            "not the InfluxQL answer asked for",
            id="a web page",
        ),
        pytest.param(b"null", None, "no list of results", id="no results"),
        pytest.param(
            b'{"results": [{"statement_id": 0, "series": {"name": "t"}}]}', None, "not a list of objects", id="series"
        ),
        pytest.param(
            _answer(["time", "level", "state", "note"], [1, 2.0, None, None]),
            None,
            "columns ['time', 'level'",
            id="columns",
        ),
        pytest.param(_answer(RAW, [1, 2.0, None]), None, "rows that are not 4 values each", id="short row"),
        pytest.param(_answer(RAW, [1, "2.5", None, None]), None, "num '2.5' is not a number", id="num"),
        pytest.param(_answer(RAW, [1, None, "yes", None]), None, "flag 'yes' is not true or false", id="flag"),
        pytest.param(
            _answer(RAW, ["2026-12-01T00:00:00Z", 2.0, None, None]),
            None,
            "not a whole number of nanoseconds",
            id="time",
        ),
        pytest.param(
            _answer(BUCKETS, [1, 2.0, 1.0, 3.0, "3"]), 3.0, "count '3' is not a positive whole number", id="count"
        ),
        pytest.param(_answer(BUCKETS, [1, None, None, None, 0]), 3.0, "count 0 is not a positive", id="empty bucket"),
    ],
)
def test_an_answer_of_another_shape_is_history_unavailable_naming_the_store(
    body: bytes, bucket_s: float | None, words: str
) -> None:
    with Unreadable(body) as server:
        store = InfluxTelemetry(InfluxStore(url=server.url, bucket="estate", write_api="v1", token_env=None), site="t")
        with pytest.raises(HistoryUnavailable) as caught:
            store.history("tank-1", "level", 0, 10 * S, bucket_s)
        store.close()
    assert server.queries  # it was asked
    assert caught.value.store == f"InfluxDB at {server.url}"
    assert words in caught.value.reason, caught.value.reason


def test_points_beyond_the_retention_policy_come_back_rejected_and_the_rest_is_stored(influx: Influx1) -> None:
    store = v1_store(influx, "short", duration="1h")
    now = time.time_ns()
    current = [Reading("sump-1", "level", float(i), Quality.GOOD, now - i * S) for i in range(20)]
    old = [Reading("sump-1", "level", 100.0 + i, Quality.GOOD, now - 2 * 86400 * S - i * S) for i in range(5)]
    batch = current[:7] + old[:2] + current[7:15] + old[2:] + current[15:]
    with pytest.raises(BatchRejected) as caught:
        store.write(batch)
    store.close()
    assert caught.value.rejected == sorted(old, key=batch.index)
    assert caught.value.reasons is not None
    assert all("retention policy" in reason for reason in caught.value.reasons)
    rows = influx.select("short", "SELECT num FROM telemetry WHERE device = 'sump-1'")
    assert sorted(rows) == sorted([r.ts, r.value] for r in current)


def test_a_line_no_server_can_parse_is_rejected_before_sending(influx: Influx1) -> None:
    store = v1_store(influx, "unwritable")
    t = time.time_ns()
    batch = [
        Reading("panel-1", "message", "line one\nline two", Quality.GOOD, t),
        Reading("panel-1", "zone", 3, Quality.GOOD, t),
        Reading("panel-1\\", "zone", 4, Quality.GOOD, t),
    ]
    with pytest.raises(BatchRejected) as caught:
        store.write(batch)
    store.close()
    assert caught.value.rejected == [batch[0], batch[2]]
    assert influx.select("unwritable", "SELECT num FROM telemetry") == [[t, 3]]


@pytest.mark.parametrize("write_api", ["v2", "v1"])
def test_nothing_listening_is_store_unavailable(write_api: Literal["v2", "v1"]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    store = InfluxTelemetry(InfluxStore(url=url, write_api=write_api, token_env=None), site="t")
    with pytest.raises(StoreUnavailable, match="cannot reach InfluxDB"):
        store.write([Reading("pump-1", "pressure", 1.0, Quality.GOOD, time.time_ns())])
    with pytest.raises(StoreUnavailable):
        store.history("pump-1", "pressure", 0, time.time_ns())
    store.close()


def test_refused_credentials_are_store_unavailable_and_the_token_is_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "s3cret-t0ken-value"
    monkeypatch.setenv("TEST_INFLUX_TOKEN", secret)
    caplog.set_level(logging.DEBUG)
    (tmp_path / "influx").mkdir()
    (tmp_path / "vm").mkdir()
    with Influx1(tmp_path / "influx", auth=True) as influx, VictoriaMetrics(tmp_path / "vm", auth=True) as vm:
        configs = [
            InfluxStore(url=influx.url, bucket="db", write_api="v1", token_env="TEST_INFLUX_TOKEN"),
            InfluxStore(url=vm.url, bucket="db", write_api="v2", token_env="TEST_INFLUX_TOKEN"),
        ]
        for config in configs:
            store = InfluxTelemetry(config, site="t")
            with pytest.raises(StoreUnavailable, match="refused the credentials") as caught:
                store.write([Reading("pump-1", "pressure", 1.0, Quality.GOOD, time.time_ns())])
            assert "TEST_INFLUX_TOKEN" in str(caught.value)  # where to look
            assert secret not in str(caught.value)
            with pytest.raises(StoreUnavailable, match="refused the credentials") as caught:
                store.history("pump-1", "pressure", 0, time.time_ns())
            assert secret not in str(caught.value)
            store.close()
    assert secret not in caplog.text


def test_a_missing_database_is_store_unavailable_not_a_rejection(influx: Influx1) -> None:
    store = InfluxTelemetry(
        InfluxStore(url=influx.url, bucket="never-created", write_api="v1", token_env=None), site="t"
    )
    with pytest.raises(StoreUnavailable, match="database not found"):
        store.write([Reading("pump-1", "pressure", 1.0, Quality.GOOD, time.time_ns())])
    store.close()
