"""Desk API: the alarm list, a day's trend and the event stream's fan-out, over real HTTP.

Fills a SQLite ops store with an estate's worth of alarms (10,000 over 90 days: most closed, a few
hundred open in every state, all priorities, over 88 devices in 8 buildings) and their history
(1,000,000 rows, heavy-tailed as chattering alarms make it), and a SQLite telemetry store with a
day of one point at 1 s. Then runs `facility run` on those stores in a process of its own, with a
Mosquitto of its own and the plant silent (no simulators, no rules), and measures as a desk would:

- `alarm_list_*`: GET /api/v1/alarms as the desk opens it (open, desk order, 100), and
  `alarm_list_filtered_*` a search of closed ones too (priority high, newest first, 50);
- `trend_day_*`: a day's history of the point (86,400 readings), downsampled by the API;
- `sse_*`: clients following /api/v1/stream while alarms are acknowledged; the spread is the last
  client's arrival minus the first's, `sse_publish_to_last_ms` runs from the server's time stamp
  of the acknowledgement (taken before its transaction, so a little over the publish itself) and
  `sse_ack_to_last_ms` from sending the request. The clients share this process's event loop, so
  the spread includes their own turn-taking: an upper bound of what separate desks see.

Targets: alarm list p99 under 50 ms, a day's trend under 200 ms, spread under 50 ms; `*_to_target`
divides each figure by its target (under 1 meets it). Prints one JSON object on a line of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, insert

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api.schemas import Alarm, AlarmPage, History
from facility.model import Quality, Reading
from facility.netutil import free_port
from facility.store.ops import OpsStore
from facility.store.sqlite_telemetry import SqliteTelemetry
from facility.store.tables import AlarmHistoryRow, AlarmRow
from testsupport.answers import CheckedClient, UnexpectedAnswer, until_ready
from testsupport.servers import Mosquitto

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-token-0123456789-abcdefghijklm"
S = 1_000_000_000
HOUR, DAY = 3600 * S, 86_400 * S
TARGETS_MS = {"alarm_list_p99": 50, "trend_day": 200, "sse_spread": 50}
BUILDINGS = 8
USERS = ("ana", "li", "wang", "zhou")
TREND = ("pump-b1-1", "outlet_pressure")
INSERT_BATCH = 50_000

# Per building: (profile, id prefix, how many, [(rule, priority, how often it fires relative to others)]).
PLANT: list[tuple[str, str, int, list[tuple[str, str, int]]]] = [
    (
        "booster_pump",
        "pump",
        2,
        [
            ("booster-pump-low-pressure", "high", 3),
            ("booster-pump-tripped", "high", 2),
            ("booster-pump-dry-run", "high", 1),
            ("booster-pump-vibration", "medium", 4),
            ("booster-pump-motor-hot", "high", 1),
        ],
    ),
    (
        "sump_pit",
        "sump",
        1,
        [
            ("sump-high-level", "emergency", 1),
            ("sump-rising-fast", "high", 2),
            ("sump-pump-fault", "high", 2),
            ("sump-pump-short-cycling", "low", 5),
        ],
    ),
    (
        "elevator",
        "lift",
        2,
        [
            ("elevator-entrapment", "emergency", 1),
            ("elevator-door-fault", "high", 3),
            ("elevator-repeated-door-faults", "medium", 3),
            ("elevator-out-of-service", "medium", 2),
        ],
    ),
    (
        "fire_panel",
        "fire",
        1,
        [("fire-alarm", "emergency", 1), ("fire-panel-fault", "high", 3), ("fire-panel-power", "high", 1)],
    ),
    (
        "power_meter",
        "power",
        1,
        [
            ("mains-failure", "emergency", 1),
            ("generator-did-not-take-over", "emergency", 1),
            ("phase-voltage-out-of-range", "high", 3),
        ],
    ),
    ("water_tank", "tank", 1, [("water-tank-low", "high", 2), ("water-tank-overflow", "medium", 2)]),
    ("lighting_panel", "light", 1, [("lighting-lamp-failure", "low", 6), ("lighting-on-in-daylight", "low", 4)]),
    (
        "access_door",
        "door",
        2,
        [("door-forced-open", "high", 2), ("door-held-open", "medium", 8), ("door-repeated-forcing", "medium", 1)],
    ),
]
OFFLINE = ("device-offline", "high", 3)
# How the open alarms divide over the states duty staff see (shares of the open count).
OPEN_MIX = {"unacknowledged": 0.3, "acknowledged": 0.4, "rtn_unacknowledged": 0.17, "shelved": 0.08, "suppressed": 0.05}


def devices() -> list[tuple[str, str, str, list[tuple[str, str, int]]]]:
    """(id, profile, building, its rules) of every device of the estate."""
    out = []
    for b in range(1, BUILDINGS + 1):
        for profile, prefix, count, rules in PLANT:
            out += [(f"{prefix}-b{b}-{k}", profile, f"B{b}", [*rules, OFFLINE]) for k in range(1, count + 1)]
    return out


def write_site(folder: Path, broker_url: str, modbus_port: int) -> Path:
    """The estate on the filled stores. Modbus devices point at a port nobody listens on (polls fail,
    devices are demoted), MQTT devices hear nothing: the plant is silent while the desk is measured."""
    lines = []
    for device, profile, building, _ in devices():
        binding = (
            f"mqtt: {{topic: bench/{device}}}"
            if profile in ("elevator", "access_door")
            else f"modbus: {{host: 127.0.0.1, port: {modbus_port}, interval: 1s, timeout: 200ms}}"
        )
        lines.append(f"  - {{id: {device}, profile: {profile}, location: {{building: {building}}}, {binding}}}\n")
    path = folder / "site.yaml"
    path.write_text(
        "site: {id: bench, name: Bench estate, timezone: Asia/Shanghai}\n"
        f'broker: {{url: "{broker_url}"}}\n'
        f"stores: {{telemetry: {folder / 'telemetry.db'}, ops: "
        f'"sqlite+aiosqlite:///{folder / "ops.db"}", spool: {folder / "spool"}}}\n'
        "use_rule_library: false\n"
        f"devices:\n{''.join(lines)}"
    )
    return path


def alarm_rows(rng: random.Random, count: int, open_count: int, now: int) -> list[dict[str, Any]]:
    """`count` alarms over 90 days, ids in the order raised: `open_count` open ones, one per
    (rule, device), in the mix of OPEN_MIX; the rest closed."""
    pairs = [(rule, prio, weight, device) for device, _, _, rules in devices() for rule, prio, weight in rules]
    if open_count > len(pairs):
        raise SystemExit(f"--open: at most {len(pairs)} (one open alarm per rule and device)")
    states = [s for s, share in OPEN_MIX.items() for _ in range(round(share * open_count))]
    states = (states + ["acknowledged"] * open_count)[:open_count]
    rows = []
    for (rule, prio, _, device), state in zip(rng.sample(pairs, open_count), states, strict=True):
        raised = now - int(rng.expovariate(1 / (2 * DAY))) - HOUR  # most open ones are recent
        rows.append(alarm(rng, rule, prio, device, raised, now, state))
    weights = [w for _, _, w, _ in pairs]
    for rule, prio, _, device in rng.choices(pairs, weights, k=count - open_count):
        raised = now - rng.randrange(HOUR, 90 * DAY)
        rows.append(alarm(rng, rule, prio, device, raised, now, "normal"))
    rows.sort(key=lambda r: r["raised_at"])
    for i, row in enumerate(rows, 1):
        row["id"] = i
    return rows


def alarm(rng: random.Random, rule: str, prio: str, device: str, raised: int, now: int, state: str) -> dict[str, Any]:
    """One alarm row in `state` (an AlarmState value, or `shelved`/`suppressed` open ones)."""
    active = state in ("unacknowledged", "acknowledged", "suppressed") or (state == "shelved" and rng.random() < 0.5)
    acked = state in ("normal", "acknowledged") or (state == "shelved" and rng.random() < 0.5)
    cleared = None if active else min(now - HOUR // 2, raised + rng.randrange(S, 6 * HOUR))
    acked_at = min(now - HOUR // 2, raised + rng.randrange(10 * S, HOUR)) if acked else None
    changed = max(t for t in (raised, cleared, acked_at) if t is not None)
    shelved = state == "shelved"
    return {
        "rule_id": rule,
        "device_id": device,
        "priority": prio,
        "title_zh": f"{device} {rule}",
        "title_en": f"{device}: {rule.replace('-', ' ')}",
        "message_zh": "",
        "message_en": "",
        "active": active,
        "acknowledged": acked,
        "is_open": state != "normal",
        "raised_at": raised,
        "changed_at": changed,
        "acked_at": acked_at,
        "acked_by": rng.choice(USERS) if acked else None,
        "cleared_at": cleared,
        "activated_at": raised,
        "shelved": shelved,
        "shelved_until": now + rng.randrange(HOUR, 20 * HOUR) if shelved else None,
        "shelved_by": rng.choice(USERS) if shelved else None,
        "shelve_reason": "sensor being replaced" if shelved else None,
        "suppressed": state == "suppressed",
        "out_of_service": False,
        "chattering": False,
        # Left unacknowledged for hours, the emergency and high ones have been escalated long ago.
        "escalated": not acked and not shelved and state != "suppressed" and prio in ("emergency", "high"),
    }


def history_counts(rng: random.Random, alarms: int, rows: int) -> list[int]:
    """History rows per alarm summing to `rows`: a few each, and a heavy tail of chattering ones."""
    base = min(3, rows // alarms)
    weights = [rng.paretovariate(1.5) for _ in range(alarms)]
    spare, total = rows - base * alarms, sum(weights)
    counts = [base + int(spare * w / total) for w in weights]
    for i in range(rows - sum(counts)):  # what rounding down left over
        counts[i % alarms] += 1
    return counts


def history_rows(rng: random.Random, alarms: list[dict[str, Any]], counts: list[int]) -> Iterator[dict[str, Any]]:
    """Each alarm's history, oldest first: raised, then returns and recurrences with a comment now
    and then, ending as its state says (acknowledged, returned to normal, shelved)."""
    for row, count in zip(alarms, counts, strict=True):
        tail = [a for a, on in (("acknowledged", row["acknowledged"]), ("shelved", row["shelved"])) if on]
        if not row["active"]:
            tail.append("returned to normal")
        tail = tail[: max(0, count - 1)]
        middle = count - 1 - len(tail)
        actions = ["raised"]
        actions += ["comment" if i % 25 == 24 else ("returned to normal", "raised again")[i % 2] for i in range(middle)]
        actions += tail
        start, step = row["raised_at"], max(1, (row["changed_at"] - row["raised_at"]) // max(1, count))
        for i, action in enumerate(actions):
            by_user = action in ("acknowledged", "shelved", "comment")
            yield {
                "alarm_id": row["id"],
                "ts": start + i * step,
                "action": action,
                "actor": rng.choice(USERS) if by_user else "rules",
                "source": "10.0.0.12" if by_user else "",
                "detail": "checked on site, pressure back" if action == "comment" else "",
            }


async def fill_ops(path: Path, alarms: list[dict[str, Any]], history: Iterator[dict[str, Any]]) -> int:
    """Bulk-insert the alarms and their history (executemany in batches) into a database made by
    the migrations, as the service makes it; returns history rows."""
    store = OpsStore(f"sqlite+aiosqlite:///{path}")
    await store.upgrade()
    await store.close()
    return await asyncio.to_thread(_insert, path, alarms, history)


def _insert(path: Path, alarms: list[dict[str, Any]], history: Iterator[dict[str, Any]]) -> int:
    engine = create_engine(f"sqlite:///{path}")
    written = 0
    with engine.begin() as conn:
        conn.execute(insert(AlarmRow), alarms)
        batch: list[dict[str, Any]] = []
        for row in history:
            batch.append(row)
            if len(batch) == INSERT_BATCH:
                conn.execute(insert(AlarmHistoryRow), batch)
                written, batch = written + len(batch), []
        if batch:
            conn.execute(insert(AlarmHistoryRow), batch)
            written += len(batch)
    engine.dispose()
    return written


def fill_telemetry(path: Path, start: int) -> int:
    """A day of the trend point at 1 s: a daily pressure swing with noise."""
    rng = random.Random(2)
    device, point = TREND
    readings = [
        Reading(device, point, round(0.45 + 0.05 * math.sin(i / 86_400 * 2 * math.pi) + rng.gauss(0, 0.005), 4),
                Quality.GOOD, start + i * S)
        for i in range(86_400)
    ]  # fmt: skip
    store = SqliteTelemetry(path)
    try:
        for i in range(0, len(readings), 5000):
            store.write(readings[i : i + 5000])
    finally:
        store.close()
    return len(readings)


def summary(prefix: str, samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    return {
        f"{prefix}_p50_ms": round(statistics.median(ms), 2),
        f"{prefix}_p99_ms": round(p99, 2),
        f"{prefix}_max_ms": round(ms[-1], 2),
    }


async def timed(
    http: CheckedClient, url: str, params: dict[str, Any], model: type[AlarmPage | History], runs: int, warmup: int
) -> list[float]:
    """Seconds per request of `runs` GETs, after `warmup` unmeasured ones; each answer is checked
    (after its time is taken) against the route's answer model."""
    out = []
    for i in range(warmup + runs):
        answer = await http.get(url, params=params, model=model)
        if i >= warmup:
            out.append(answer.elapsed_s)
    return out


class Followers:
    """Clients following the event stream; records when each `alarm` event reaches each client."""

    def __init__(self, base_url: str, clients: int) -> None:
        limits = httpx.Limits(max_connections=clients + 10, max_keepalive_connections=clients + 10)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        self._http = httpx.AsyncClient(base_url=base_url, headers=headers, timeout=None, limits=limits)
        self._clients = clients
        self._connected = 0
        self._all_connected = asyncio.Event()
        self._arrivals: dict[int, list[int]] = {}  # alarm id -> perf_counter_ns per client
        self._waiting: dict[int, asyncio.Event] = {}
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Followers:
        self._tasks = [asyncio.create_task(self._follow()) for _ in range(self._clients)]
        connected = asyncio.create_task(self._all_connected.wait())
        # A client that failed (an unexpected answer) says why, rather than leaving a timeout.
        done, _ = await asyncio.wait([connected, *self._tasks], timeout=30, return_when=asyncio.FIRST_COMPLETED)
        if connected not in done:
            connected.cancel()
            await self.__aexit__()
            for task in done:
                task.result()
            raise TimeoutError(f"{self._connected} of {self._clients} event-stream clients connected within 30 s")
        return self

    async def __aexit__(self, *_: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._http.aclose()

    async def _follow(self) -> None:
        async with self._http.stream("GET", "/api/v1/stream") as response:
            media = response.headers.get("content-type", "")
            if response.status_code != 200 or not media.startswith("text/event-stream"):
                await response.aread()
                raise UnexpectedAnswer(
                    f"GET /api/v1/stream got status {response.status_code} ({media}): {response.text[:500]}"
                )
            kind = ""
            async for line in response.aiter_lines():
                if line.startswith("data:") and kind == "alarm":
                    arrived = time.perf_counter_ns()
                    alarm_id = json.loads(line[5:])["id"]
                    seen = self._arrivals.setdefault(alarm_id, [])
                    seen.append(arrived)
                    if len(seen) == self._clients and alarm_id in self._waiting:
                        self._waiting[alarm_id].set()
                elif line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith(": connected"):
                    self._connected += 1
                    if self._connected == self._clients:
                        self._all_connected.set()

    def expect(self, alarm_id: int) -> asyncio.Event:
        """Set once every client has the alarm's event."""
        self._waiting[alarm_id] = done = asyncio.Event()
        if len(self._arrivals.get(alarm_id, ())) == self._clients:
            done.set()
        return done

    def arrivals(self, alarm_id: int) -> list[int]:
        return self._arrivals[alarm_id]


async def fan_out(base_url: str, http: CheckedClient, clients: int, rounds: int) -> dict[str, Any]:
    """Acknowledge one open alarm per round while `clients` follow the stream; spreads and latencies."""
    page = await http.get("/api/v1/alarms", params={"state": "unacknowledged", "limit": rounds}, model=AlarmPage)
    chosen = [a["id"] for a in page.body["items"]]
    if len(chosen) < rounds:
        raise RuntimeError(f"only {len(chosen)} unacknowledged alarms to acknowledge, {rounds} rounds asked")
    wall_minus_perf = time.time_ns() - time.perf_counter_ns()
    spreads, from_publish, from_request = [], [], []
    async with Followers(base_url, clients) as followers:
        for alarm_id in chosen:
            done = followers.expect(alarm_id)
            acked = await http.post(f"/api/v1/alarms/{alarm_id}/ack", model=Alarm, check=acknowledged(alarm_id))
            sent = round(acked.sent * 1e9)  # the accepted request's, should a 429 have been waited out
            await asyncio.wait_for(done.wait(), 30)
            arrivals = followers.arrivals(alarm_id)
            first, last = min(arrivals), max(arrivals)
            spreads.append((last - first) / 1e6)
            from_publish.append((last + wall_minus_perf - acked.body["changed_at"]) / 1e6)
            from_request.append((last - sent) / 1e6)
    return {
        "sse_clients": clients,
        "sse_rounds": rounds,
        "sse_spread_ms": round(statistics.median(spreads), 2),
        "sse_spread_max_ms": round(max(spreads), 2),
        "sse_publish_to_last_ms": round(statistics.median(from_publish), 2),
        "sse_publish_to_last_max_ms": round(max(from_publish), 2),
        "sse_ack_to_last_ms": round(statistics.median(from_request), 2),
    }


def acknowledged(alarm_id: int) -> Callable[[Any], str | None]:
    """A check of an acknowledgement's answer: that alarm, now acknowledged by the bench's token."""

    def check(body: Any) -> str | None:
        if body["id"] != alarm_id or not body["acknowledged"]:
            return f"not alarm {alarm_id} acknowledged"
        return None

    return check


def start_server(site: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        command = [sys.executable, "-m", "facility_app", "run", "-c", str(site), "--port", str(port)]
        env = {**os.environ, "FACILITY_TOKEN": TOKEN}  # never on the command line, where ps shows it
        return subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=out, env=env)


async def wait_ready(url: str, server: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=url) as http:
        checked = CheckedClient(http)
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise RuntimeError(f"the server exited with {server.returncode}:\n{tail(log)}")
            try:  # not listening yet is the only failure waited out; any answer but this one is not
                await checked.get("/healthz", check=healthy)
            except httpx.TransportError:
                pass
            else:  # it answers; the desk's figures need its stores open (the plant is silent on purpose)
                await until_ready(checked, ("ops_store", "telemetry_store"), max(1.0, deadline - time.monotonic()))
                return
            await asyncio.sleep(0.1)
    raise TimeoutError(f"the server did not answer within {timeout} s:\n{tail(log)}")


def healthy(body: Any) -> str | None:
    return None if body == {"status": "ok", "site": "bench"} else "not the bench site's health"


def tail(log: Path) -> str:
    return log.read_text()[-3000:]


def stop_server(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


async def measure(url: str, args: argparse.Namespace, day_start: int) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        http = CheckedClient(client)
        desk = await http.get("/api/v1/alarms", model=AlarmPage)
        filtered = {"open": "false", "priority": "high", "sort": "-raised_at", "limit": 50}
        default_list = summary("alarm_list", await timed(http, "/api/v1/alarms", {}, AlarmPage, args.requests, 20))
        filtered_list = summary(
            "alarm_list_filtered", await timed(http, "/api/v1/alarms", filtered, AlarmPage, args.requests, 20)
        )

        device, point = TREND
        iso = [datetime.fromtimestamp(t / S, UTC).isoformat() for t in (day_start, day_start + DAY)]
        trend_url, trend_params = f"/api/v1/devices/{device}/points/{point}/history", {"since": iso[0], "until": iso[1]}
        trend = await timed(http, trend_url, trend_params, History, args.trend_runs, 3)
        body = (await http.get(trend_url, params=trend_params, model=History)).body

        stream = await fan_out(url, http, args.clients, args.rounds)
    return {
        "open_alarms": desk.body["total"],
        "alarm_list_requests": args.requests,
        **default_list,
        **filtered_list,
        "trend_runs": args.trend_runs,
        "trend_day_ms": round(statistics.median(trend) * 1000, 2),
        "trend_day_max_ms": round(max(trend) * 1000, 2),
        "trend_samples_returned": len(body["samples"]),
        "trend_bucket_s": body["bucket_s"],
        **stream,
        "rate_limited": http.rate_limited,
    }


async def main(args: argparse.Namespace) -> dict[str, object]:
    rng = random.Random(6)
    now = time.time_ns() // S * S
    day_start = now - DAY - HOUR
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        alarms = alarm_rows(rng, args.alarms, args.open, now)
        history = await fill_ops(
            folder / "ops.db", alarms, history_rows(rng, alarms, history_counts(rng, len(alarms), args.history))
        )
        readings = fill_telemetry(folder / "telemetry.db", day_start)
        fill_s = time.perf_counter() - started

        broker = Mosquitto(folder)
        broker.start()
        port, log = free_port(), folder / "server.log"
        server = start_server(write_site(folder, broker.url, free_port()), port, log)
        try:
            url = f"http://127.0.0.1:{port}"
            await wait_ready(url, server, log)
            figures = await measure(url, args, day_start)
        finally:
            stop_server(server)
            broker.stop()
    return {
        "benchmark": "desk",
        "alarms": len(alarms),
        "history_rows": history,
        "trend_samples_stored": readings,
        "fill_s": round(fill_s, 1),
        **figures,
        "alarm_list_p99_target_ms": TARGETS_MS["alarm_list_p99"],
        "trend_day_target_ms": TARGETS_MS["trend_day"],
        "sse_spread_target_ms": TARGETS_MS["sse_spread"],
        "alarm_list_p99_to_target": round(figures["alarm_list_p99_ms"] / TARGETS_MS["alarm_list_p99"], 3),
        "trend_day_to_target": round(figures["trend_day_ms"] / TARGETS_MS["trend_day"], 3),
        "sse_spread_to_target": round(figures["sse_spread_ms"] / TARGETS_MS["sse_spread"], 3),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alarms", type=int, default=10_000)
    parser.add_argument("--open", type=int, default=300, help="of the alarms, how many are open")
    parser.add_argument("--history", type=int, default=1_000_000, help="alarm history rows")
    parser.add_argument("--requests", type=int, default=300, help="measured requests per alarm list")
    parser.add_argument("--trend-runs", type=int, default=30)
    parser.add_argument("--clients", type=int, default=100, help="event-stream clients")
    parser.add_argument("--rounds", type=int, default=5, help="alarms acknowledged while the clients follow")
    try:
        result = asyncio.run(main(parser.parse_args()))
    except UnexpectedAnswer as exc:
        sys.exit(f"bench/desk.py failed: {exc}")
    print(json.dumps(result), flush=True)
