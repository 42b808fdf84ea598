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
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api.schemas import Alarm, AlarmPage, History
from bench.support.desk_seed import (
    DAY,
    HOUR,
    TREND,
    S,
    alarm_rows,
    devices,
    fill_ops,
    fill_telemetry,
    history_counts,
    history_rows,
)
from bench.support.figures import summary
from bench.support.server import TOKEN, start_server, stop_server, wait_ready
from facility.netutil import free_port
from testsupport.answers import CheckedClient, UnexpectedAnswer
from testsupport.servers import Mosquitto

SITE_ID = "bench"  # the estate of the filled stores
TARGETS_MS = {"alarm_list_p99": 50, "trend_day": 200, "sse_spread": 50}


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
        f"site: {{id: {SITE_ID}, name: Bench estate, timezone: Asia/Shanghai}}\n"
        f'broker: {{url: "{broker_url}"}}\n'
        f"stores: {{telemetry: {folder / 'telemetry.db'}, ops: "
        f'"sqlite+aiosqlite:///{folder / "ops.db"}", spool: {folder / "spool"}}}\n'
        "use_rule_library: false\n"
        f"devices:\n{''.join(lines)}"
    )
    return path


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


async def measure(url: str, args: argparse.Namespace, day_start: int) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        http = CheckedClient(client)
        desk = await http.get("/api/v1/alarms", model=AlarmPage)
        filtered = {"open": "false", "priority": "high", "sort": "-raised_at", "limit": 50}
        default_list = await timed(http, "/api/v1/alarms", {}, AlarmPage, args.requests, 20)
        filtered_list = await timed(http, "/api/v1/alarms", filtered, AlarmPage, args.requests, 20)

        device, point = TREND
        iso = [datetime.fromtimestamp(t / S, UTC).isoformat() for t in (day_start, day_start + DAY)]
        trend_url, trend_params = f"/api/v1/devices/{device}/points/{point}/history", {"since": iso[0], "until": iso[1]}
        trend = await timed(http, trend_url, trend_params, History, args.trend_runs, 3)
        body = (await http.get(trend_url, params=trend_params, model=History)).body

        stream = await fan_out(url, http, args.clients, args.rounds)
    return {
        "open_alarms": desk.body["total"],
        "alarm_list_requests": args.requests,
        **summary("alarm_list", default_list, digits=2),
        **summary("alarm_list_filtered", filtered_list, digits=2),
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
            folder / "ops.db",
            SITE_ID,
            alarms,
            history_rows(rng, alarms, history_counts(rng, len(alarms), args.history)),
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
