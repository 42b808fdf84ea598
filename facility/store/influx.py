"""Telemetry in InfluxDB: line protocol in, InfluxQL out.

Schema: measurement `telemetry`, tags `device` and `point`, and one field per value type so that
no field ever changes type — `num` (float) for numbers, `flag` (boolean), `text` (string) — plus
a `quality` string field on every line. A point is keyed by (tags, time), so writing a reading
again overwrites it: replays after an outage leave one copy.

Writes go through influxdb-client's v2 write API (synchronous, gzip), or for InfluxDB before 1.8
as a plain POST to `/write`. A batch the server refuses (HTTP 400, 413, 422) is bisected so that the good
lines are stored and only the bad ones come back in BatchRejected. Retries here are few and short:
the writer above spools a batch that fails, so a long retry would only stall it.
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
from facility.store.telemetry import BatchRejected, Sample, StoreUnavailable

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

    def __init__(self, config: InfluxStore) -> None:
        self.config = config
        self._url = config.url.rstrip("/")
        parts = urlsplit(self._url)
        self._where = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"  # for messages: no user info
        token = config.token
        self._client = InfluxDBClient(
            url=self._url, token=token or "", org=config.org, timeout=int(config.timeout * 1000), enable_gzip=True
        )
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)
        # influxdb-client's own urllib3 pool (thread-safe, keep-alive) for v1 writes and queries.
        self._pool: urllib3.PoolManager = self._client.api_client.rest_client.pool_manager
        self._timeout = urllib3.Timeout(total=config.timeout)
        self._headers = {"Authorization": f"Token {token}"} if token else {}
        self._v1_write_url = f"{self._url}/write?" + urlencode({"db": config.bucket, "precision": "ns"})
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
            prefix = f"{MEASUREMENT},device={escape_tag(device)},point={escape_tag(point)} "
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
                raise self._refused(status)
            problem = f"InfluxDB at {self._where} answered HTTP {status}: {reason}"
            if status not in _RETRY:
                break
        raise StoreUnavailable(problem)

    def _send(self, body: bytes) -> tuple[int, str]:
        if self.config.write_api == "v2":
            try:
                # The client's default precision is ns (WritePrecision.NS, typed as a plain str).
                self._write_api.write(self.config.bucket, self.config.org, body)
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
        where = (
            f"device = {influxql_string(device)} AND point = {influxql_string(point)} AND quality = 'good'"
            f" AND time >= {int(start_ns)} AND time < {int(end_ns)}"
        )
        if bucket_s is None:
            rows = self.query(f"SELECT num, flag, text FROM {MEASUREMENT} WHERE {where}")
            samples = []
            for ts, num, flag, text in rows:
                value = float(num) if num is not None else flag if flag is not None else text
                samples.append(Sample(ts, value, value, value, 1))
            return samples
        bucket = max(1, int(bucket_s * 1e9))
        # The offset aligns buckets to the range start, as the SQLite store does.
        rows = self.query(
            f"SELECT mean(num), min(num), max(num), count(num) FROM {MEASUREMENT} WHERE {where}"
            f" GROUP BY time({bucket}ns, {start_ns % bucket}ns) fill(none)"
        )
        return [Sample(ts, float(mean), float(lo), float(hi), int(n)) for ts, mean, lo, hi, n in rows]

    def query(self, influxql: str) -> list[list[Any]]:
        """Rows of one InfluxQL statement (all series concatenated), times in ns."""
        params = {"db": self.config.bucket, "q": influxql, "epoch": "ns", "chunked": "true", "chunk_size": "10000"}
        try:
            response = self._pool.request(
                "GET",
                f"{self._url}/query?{urlencode(params)}",
                headers=self._headers,
                timeout=self._timeout,
                retries=False,
            )
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise StoreUnavailable(f"cannot reach InfluxDB at {self._where}: {exc}") from exc
        if response.status in (401, 403):
            raise self._refused(response.status)
        if response.status != 200:
            raise StoreUnavailable(f"InfluxDB query failed (HTTP {response.status}): {_message(response.data)}")
        rows: list[list[Any]] = []
        for chunk in _chunks(response.data):
            for result in chunk.get("results", []):
                if "error" in result:
                    raise StoreUnavailable(f"InfluxDB query failed: {result['error']}")
                for series in result.get("series", []):
                    rows.extend(series["values"])
        return rows

    def _refused(self, status: int) -> StoreUnavailable:
        """Names where the token comes from, never the token."""
        source = f"the token in ${self.config.token_env}" if self.config.token_env else "the token (none is set)"
        return StoreUnavailable(f"InfluxDB at {self._where} refused the credentials (HTTP {status}); check {source}")

    def prune(self, now_ns: int) -> int:
        """Nothing: the server's retention policy (or bucket retention) deletes old data."""
        return 0

    def close(self) -> None:
        self._write_api.close()
        self._client.close()


def _chunks(data: bytes) -> Iterator[dict[str, Any]]:
    """The JSON documents of a chunked /query answer, one per line."""
    for line in data.splitlines():
        if line.strip():
            yield json.loads(line)
