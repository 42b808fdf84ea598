"""Telemetry in InfluxDB: line protocol in, InfluxQL out.

Schema: measurement `telemetry`, tags `site`, `device` and `point`, and one field per value type so that
no field ever changes type — `num` (float) for numbers, `flag` (boolean), `text` (string) — plus
a `quality` string field on every line. A point is keyed by (tags, time), so writing a reading
again overwrites it: replays after an outage leave one copy. The `site` tag keeps estates that
share a database apart (a device id is unique within its estate only); history asks for the
estate's own readings and for those written before readings carried the tag, which belonged to the
one estate of that database.

Writes go through influxdb-client's v2 write API (synchronous, gzip), or for InfluxDB before 1.8
as a plain POST to `/write`. A batch the server refuses (HTTP 400, 413, 422) is bisected so that the good
lines are stored and only the bad ones come back in BatchRejected. Retries here are few and short:
the writer above spools a batch that fails, so a long retry would only stall it.

History is read with InfluxQL over `/query`: InfluxDB 1.x, and 2.x through its 1.x-compatible API
(a bucket is found by its name). Whatever else the server answers — an error, a page that is not
InfluxQL JSON, series of other columns, values of other types — is HistoryUnavailable naming the
server and why. VictoriaMetrics takes the writes but cannot answer history (see `_NO_INFLUXQL`).
"""

from __future__ import annotations

import gzip
import json
import math
import re
import time
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlencode, urlsplit

import urllib3
from influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

from facility.model import Quality, Reading, Value
from facility.site import InfluxStore
from facility.store.telemetry import BatchRejected, HistoryUnavailable, Sample, StoreUnavailable

MEASUREMENT = "telemetry"
RETRIES = 2  # after the first try, for refused connections and 429/502/503/504
BACKOFF_S = 0.2  # doubled per retry
MAX_CACHED_SERIES = 100_000  # line prefixes kept per (device, point)

_REJECTED = frozenset({400, 413, 422})  # the lines are at fault: bisect
_RETRY = frozenset({429, 502, 503, 504})
_TAG_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
# Line protocol cannot carry these in a tag, and a backslash there is ambiguous across servers.
_UNWRITABLE_TAG = re.compile(r"[\x00-\x1f\x7f\\]")
_DROPPED = re.compile(r"dropped=(\d+)\s*$")


class _Unwritable(ValueError):
    """A reading that no line can express; it is rejected without asking the server."""


def escape_tag(value: str) -> str:
    if not value or _UNWRITABLE_TAG.search(value):
        raise _Unwritable(f"tag value {value!r} is empty or holds a control character or backslash")
    return value.translate(_TAG_ESCAPES)


def encode_fields(value: Value, quality: Quality) -> str:
    """The field set of one reading. A number InfluxDB cannot hold (NaN, ±inf) goes as quality bad."""
    if type(value) is float:
        number = value
    elif isinstance(value, bool):
        return f'flag={"true" if value else "false"},quality="{quality._value_}"'
    elif isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
    elif isinstance(value, str):
        if "\n" in value or "\r" in value:
            raise _Unwritable("a line break in a string value cannot be written as line protocol")
        text = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'text="{text}",quality="{quality._value_}"'
    elif value is None:
        return f'quality="{quality._value_}"'
    else:
        raise _Unwritable(f"a value of type {type(value).__name__} cannot be stored")
    if math.isfinite(number):
        return f'num={number!r},quality="{quality._value_}"'
    return 'quality="bad"'


def influxql_string(value: str) -> str:
    """A single-quoted InfluxQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _dropped(message: str) -> int | None:
    """How many points InfluxDB 1.x says it dropped, when that count covers every bad line."""
    match = _DROPPED.search(message)
    if match is None or "unable to parse" in message:
        return None
    return int(match.group(1))


def _message(body: Any) -> str:
    """The server's reason from an error body: JSON `error`/`message`, else the text."""
    if isinstance(body, bytes | bytearray):
        body = body.decode("utf-8", errors="replace")
    text = str(body or "").strip()
    try:
        doc = json.loads(text)
    except ValueError:
        return text[:500]
    if isinstance(doc, dict):
        return str(doc.get("error") or doc.get("message") or text)[:500]
    return text[:500]


class InfluxTelemetry:
    quick_writes = False  # a network round trip: the writer calls it in a worker thread

    def __init__(self, config: InfluxStore, *, site: str) -> None:
        self.config = config
        self._site = escape_tag(site)  # in every line, and in every history query
        self._url = config.url.rstrip("/")
        parts = urlsplit(self._url)
        self._where = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"  # for messages: no user info
        token = config.token
        self._client = InfluxDBClient(
            url=self._url, token=token or "", org=config.org_name, timeout=int(config.timeout * 1000), enable_gzip=True
        )
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)
        # influxdb-client's own urllib3 pool (thread-safe, keep-alive) for v1 writes and queries.
        self._pool: urllib3.PoolManager = self._client.api_client.rest_client.pool_manager
        self._timeout = urllib3.Timeout(total=config.timeout)
        self._headers = {"Authorization": f"Token {token}"} if token else {}
        self._v1_write_url = f"{self._url}/write?" + urlencode({"db": config.bucket_name, "precision": "ns"})
        self._prefixes: dict[tuple[str, str], str] = {}

    # --- writing -----------------------------------------------------------------------------

    def write(self, readings: Sequence[Reading]) -> None:
        lines: list[str] = []
        origin: list[int] = []  # index in `readings` of each line
        refused: list[tuple[int, str]] = []
        for i, r in enumerate(readings):
            try:
                lines.append(f"{self._prefix(r.device, r.point)}{encode_fields(r.value, r.quality)} {r.ts:d}")
            except (ValueError, TypeError) as exc:  # _Unwritable, or a malformed reading
                refused.append((i, str(exc)))
                continue
            origin.append(i)
        if lines:
            refused += [(origin[j], reason) for j, reason in self._bisect(lines, 0, len(lines))]
        if refused:
            refused.sort()
            reasons = [reason for _, reason in refused]
            summary = "; ".join(dict.fromkeys(reasons))
            raise BatchRejected(summary, [readings[i] for i, _ in refused], reasons)

    def _prefix(self, device: str, point: str) -> str:
        key = (device, point)
        prefix = self._prefixes.get(key)
        if prefix is None:
            prefix = f"{MEASUREMENT},device={escape_tag(device)},point={escape_tag(point)},site={self._site} "
            if len(self._prefixes) >= MAX_CACHED_SERIES:
                self._prefixes.clear()
            self._prefixes[key] = prefix
        return prefix

    def _bisect(self, lines: list[str], lo: int, hi: int) -> list[tuple[int, str]]:
        """Post lines[lo:hi]; on refusal post each half again. Returns (index, reason) of bad lines.

        Lines that are fine get written along the way (again, if the server had kept them from a
        partial write: that is harmless). When InfluxDB 1.x says it dropped every line of a part,
        the part is rejected whole without splitting further.
        """
        reason = self._post("\n".join(lines[lo:hi]).encode())
        if reason is None:
            return []
        if hi - lo == 1 or _dropped(reason) == hi - lo:
            reason = _DROPPED.sub("", reason).rstrip() or reason  # the same words for every line
            return [(i, reason) for i in range(lo, hi)]
        mid = (lo + hi) // 2
        return self._bisect(lines, lo, mid) + self._bisect(lines, mid, hi)

    def _post(self, body: bytes) -> str | None:
        """Send one body with a few short retries: None when stored, the reason when refused."""
        problem = ""
        for attempt in range(RETRIES + 1):
            if attempt:
                time.sleep(BACKOFF_S * 2 ** (attempt - 1))
            try:
                status, reason = self._send(body)
            except urllib3.exceptions.NewConnectionError as exc:  # refused, unreachable: worth a retry
                problem = f"cannot reach InfluxDB at {self._where}: {exc}"
                continue
            except urllib3.exceptions.TimeoutError as exc:  # a retry would stall the writer as long again
                raise StoreUnavailable(f"InfluxDB at {self._where} gave no answer in {self.config.timeout:g}s") from exc
            except (urllib3.exceptions.HTTPError, OSError) as exc:  # reset, broken pipe, ...
                problem = f"cannot reach InfluxDB at {self._where}: {exc}"
                continue
            if 200 <= status < 300:
                return None
            if status in _REJECTED:
                return reason or f"HTTP {status}"
            if status in (401, 403):
                raise StoreUnavailable(f"{self._store} {self._credentials(status)}")
            problem = f"InfluxDB at {self._where} answered HTTP {status}: {reason}"
            if status not in _RETRY:
                break
        raise StoreUnavailable(problem)

    def _send(self, body: bytes) -> tuple[int, str]:
        if self.config.write_api == "v2":
            try:
                # The client's default precision is ns (WritePrecision.NS, typed as a plain str).
                self._write_api.write(self.config.bucket_name, self.config.org_name, body)
            except ApiException as exc:
                return int(exc.status or 0), _message(exc.body or exc.reason)
            return 204, ""
        response = self._pool.request(
            "POST",
            self._v1_write_url,
            body=gzip.compress(body, compresslevel=1),
            headers={**self._headers, "Content-Encoding": "gzip", "Content-Type": "text/plain; charset=utf-8"},
            timeout=self._timeout,
            retries=False,
        )
        return response.status, _message(response.data)

    # --- reading -----------------------------------------------------------------------------

    def history(
        self, device: str, point: str, start_ns: int, end_ns: int, bucket_s: float | None = None
    ) -> list[Sample]:
        """Good readings only, as the SQLite store gives them. Raises HistoryUnavailable when the
        server cannot be asked or answers anything but the InfluxQL answer asked for."""
        site = f"(site = {influxql_string(self._site)} OR site = '')"  # '' : written before the tag
        where = (
            f"{site} AND device = {influxql_string(device)} AND point = {influxql_string(point)} AND quality = 'good'"
            f" AND time >= {int(start_ns)} AND time < {int(end_ns)}"
        )
        if bucket_s is None:
            rows = self._select(f"SELECT num, flag, text FROM {MEASUREMENT} WHERE {where}", ("num", "flag", "text"))
            try:
                return [_raw_sample(*row) for row in rows]
            except ValueError as exc:
                raise HistoryUnavailable(self._store, f"it answered a reading it cannot hold: {exc}") from None
        bucket = max(1, int(bucket_s * 1e9))
        # The offset aligns buckets to the range start, as the SQLite store does.
        rows = self._select(
            f"SELECT mean(num), min(num), max(num), count(num) FROM {MEASUREMENT} WHERE {where}"
            f" GROUP BY time({bucket}ns, {start_ns % bucket}ns) fill(none)",
            ("mean", "min", "max", "count"),
        )
        try:
            return [_bucket_sample(*row) for row in rows]
        except ValueError as exc:
            raise HistoryUnavailable(self._store, f"it answered a bucket it cannot hold: {exc}") from None

    def _select(self, influxql: str, columns: tuple[str, ...]) -> list[list[Any]]:
        """Rows of one InfluxQL SELECT (all series concatenated), times in ns. Each series must
        have the columns `time` and then `columns`, each row one value per column: what a server
        answers in another shape is HistoryUnavailable naming it, never a crash of the caller."""
        params = {"db": self.config.bucket_name, "q": influxql, "epoch": "ns", "chunked": "true", "chunk_size": "10000"}
        try:
            response = self._pool.request(
                "GET",
                f"{self._url}/query?{urlencode(params)}",
                headers=self._headers,
                timeout=self._timeout,
                retries=False,
            )
        except urllib3.exceptions.TimeoutError as exc:
            raise HistoryUnavailable(self._store, f"no answer in {self.config.timeout:g}s") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise HistoryUnavailable(self._store, f"cannot reach it: {exc}") from exc
        if response.status in (401, 403):
            raise HistoryUnavailable(self._store, self._credentials(response.status))
        if response.status != 200:
            raise HistoryUnavailable(
                self._store, f"the query failed (HTTP {response.status}): {_message(response.data)}"
            )
        expected = ["time", *columns]
        rows: list[list[Any]] = []
        try:
            for series in _series(response.data):
                if series.get("name") == "databases" and series.get("columns") == ["name"]:
                    raise HistoryUnavailable(f"VictoriaMetrics at {self._where}", _NO_INFLUXQL)
                if series.get("columns") != expected:
                    raise ValueError(f"columns {series.get('columns')!r} where {expected!r} were asked")
                values = series.get("values")
                if not isinstance(values, list) or not all(
                    isinstance(row, list) and len(row) == len(expected) for row in values
                ):
                    raise ValueError(f"rows that are not {len(expected)} values each")
                rows.extend(values)
        except _QueryFailed as exc:
            raise HistoryUnavailable(self._store, f"the query failed: {exc}") from None
        except ValueError as exc:  # json.JSONDecodeError included
            excerpt = response.data[:200].decode("utf-8", errors="replace")
            raise HistoryUnavailable(
                self._store, f"its answer is not the InfluxQL answer asked for ({exc}): {excerpt!r}"
            ) from None
        return rows

    @property
    def _store(self) -> str:
        """The store as an operator knows it: kind and address, no user info."""
        return f"InfluxDB at {self._where}"

    def _credentials(self, status: int) -> str:
        """Names where the token comes from, never the token."""
        source = f"the token in ${self.config.token_env}" if self.config.token_env else "the token (none is set)"
        return f"refused the credentials (HTTP {status}); check {source}"

    def prune(self, now_ns: int) -> int:
        """Nothing: the server's retention policy (or bucket retention) deletes old data."""
        return 0

    def close(self) -> None:
        self._write_api.close()
        self._client.close()


class _QueryFailed(Exception):
    """The server ran the query and says why it failed (an unknown database, a bad statement)."""


# VictoriaMetrics takes line protocol on /write and answers every /query with its list of databases
# (for clients that check the database exists); it runs no InfluxQL. It also keeps numbers only: a
# string field arrives as 0, so the quality of every reading and the value of text points are lost.
_NO_INFLUXQL = (
    "it answered the InfluxQL query with a list of databases, as VictoriaMetrics answers every query:"
    " it runs no InfluxQL, and it keeps only the numbers of what it is sent, so the quality of each"
    " reading and the text values are not there to read. History needs InfluxDB (1.x, or 2.x through"
    " its /query); see docs/architecture.md"
)


def _series(data: bytes) -> Iterator[dict[str, Any]]:
    """The series of a chunked /query answer (one JSON document per line). Raises _QueryFailed
    for an error the server reports, ValueError for an answer of another shape."""
    for line in data.splitlines():
        if not line.strip():
            continue
        doc = json.loads(line)
        results = doc.get("results") if isinstance(doc, dict) else None
        if not isinstance(results, list):
            raise ValueError("no list of results")
        for result in results:
            if not isinstance(result, dict):
                raise ValueError("a result that is not an object")
            if "error" in result:
                raise _QueryFailed(str(result["error"]))
            series = result.get("series", [])
            if not isinstance(series, list) or not all(isinstance(s, dict) for s in series):
                raise ValueError("series that are not a list of objects")
            yield from series


def _time(ts: Any) -> int:
    if type(ts) is not int:
        raise ValueError(f"time {ts!r} is not a whole number of nanoseconds")
    return ts


def _number(value: Any, column: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{column} {value!r} is not a number")
    return float(value)


def _raw_sample(ts: Any, num: Any, flag: Any, text: Any) -> Sample:
    """One stored reading: a number, else a flag, else a text (a reading without a value: None)."""
    value: Value
    if num is not None:
        value = _number(num, "num")
    elif flag is not None:
        if not isinstance(flag, bool):
            raise ValueError(f"flag {flag!r} is not true or false")
        value = flag
    elif text is not None:
        if not isinstance(text, str):
            raise ValueError(f"text {text!r} is not a string")
        value = text
    else:
        value = None
    return Sample(_time(ts), value, value, value, 1)


def _bucket_sample(ts: Any, mean: Any, lo: Any, hi: Any, count: Any) -> Sample:
    if type(count) is not int or count < 1:
        raise ValueError(f"count {count!r} is not a positive whole number")
    return Sample(_time(ts), _number(mean, "mean"), _number(lo, "min"), _number(hi, "max"), count)
