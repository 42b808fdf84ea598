"""The HTTP edge under hostile uploads: what a stranger's large body costs the running service.

Runs `facility run` in a process of its own (no plant, no broker traffic) and measures, as an
attacker on the network would see it:

- `stranger_401_ms`: from sending the head of a 14 MB POST without a token (and 64 KiB of its
  body) to reading the answer; the body is never sent whole, so any answer proves nobody waited
  for it;
- `healthz_*_ms`: /healthz while 4 connections, from a process of their own, keep uploading 100 MB
  bodies without a token, each reconnecting when refused (`uploaded_mb`: what they pushed while
  /healthz was timed), against /healthz idle (`healthz_stall_ratio`: p99 under upload over p99
  idle; the gateway, the rules and the API share this event loop);
- `rss_growth_mb`: the server's resident memory after all of the uploads, over before: the 10
  chunked 100 MB uploads with a valid token (each refused 413 once past the 1 MiB limit), sent
  first because an address that has sent too many wrong tokens is refused even a right one, and
  the tokenless ones;
- `throttle_*`: 400 wrong tokens sent as fast as one client can, after the uploads above (each
  tokenless one a wrong token from the same address too): how many got 401, and how many 429.

Every answer is checked: a status that is not the one expected fails the run. Prints one JSON
object on a line of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.support.server import TOKEN, start_server, stop_server, wait_ready
from facility.netutil import free_port
from testsupport.answers import UnexpectedAnswer

MB = 1_000_000
CHUNK = b"x" * 65536
SITE = """\
site: {id: bench, timezone: UTC}
broker: {url: "mqtt://127.0.0.1:1"}
notifications: {mqtt: false}
stores: {telemetry: telemetry.db, ops: "sqlite+aiosqlite:///ops.db"}
devices: []
"""


async def answer_to(port: int, head: bytes, body: bytes = b"", timeout: float = 30) -> tuple[int, float]:
    """Send a request's head and the start of its body, read the status line; (status, ms)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        started = time.perf_counter()
        writer.write(head + body)
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
        return int(line.split()[1]), (time.perf_counter() - started) * 1000
    finally:
        writer.close()


def post_head(length: int | None, token: str | None = None) -> bytes:
    lines = ["POST /api/v1/tasks HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    lines.append("Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}")
    if token:
        lines.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def expect(status: int, wanted: int, what: str) -> None:
    if status != wanted:
        raise UnexpectedAnswer(f"{what}: answered {status}, expected {wanted}")


@dataclass
class Uploads:
    """What the strangers did: each answer (0: the server closed the connection on a body it would
    not read, before the answer was read), and the bytes they pushed."""

    answers: list[int] = field(default_factory=list)
    sent: int = 0


async def upload_forever(port: int, stop: Callable[[], bool], uploads: Uploads, started: Callable[[], None]) -> None:
    """A stranger uploading 100 MB bodies, one after another, until `stop()`; `started()` once its
    first bytes are on the wire."""
    while not stop():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(post_head(100 * MB))
            with contextlib.suppress(ConnectionError):
                for _ in range(100 * MB // len(CHUNK)):
                    if stop():
                        break
                    writer.write(CHUNK)
                    await writer.drain()
                    uploads.sent += len(CHUNK)
                    started()
            line = await asyncio.wait_for(reader.readline(), 30)
            uploads.answers.append(int(line.split()[1]) if line else 0)
        except ConnectionError:
            uploads.answers.append(0)
        finally:
            writer.close()


def uploaders(port: int, count: int, going: EventType, stop: EventType, results: Connection) -> None:
    """`count` strangers uploading until `stop`, in a process of their own, so that pushing their
    bytes does not delay the /healthz timer's event loop; `going` is set once all of them are
    uploading, and what they did is sent back."""

    async def run() -> Uploads:
        uploads, waiting = Uploads(), set(range(count))

        def started(n: int) -> None:
            waiting.discard(n)
            if not waiting:
                going.set()

        await asyncio.gather(
            *(upload_forever(port, stop.is_set, uploads, functools.partial(started, n)) for n in range(count))
        )
        return uploads

    results.send(asyncio.run(run()))


async def healthz_ms(http: httpx.AsyncClient, count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        answer = await http.get("/healthz")
        expect(answer.status_code, 200, "GET /healthz")
        times.append((time.perf_counter() - started) * 1000)
    return times


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1000
    raise RuntimeError(f"no VmRSS for process {pid}")


async def measure(port: int, pid: int) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}"
    figures: dict[str, Any] = {}
    status, took_ms = await answer_to(port, post_head(14 * MB), CHUNK)
    expect(status, 401, "a 14 MB POST without a token")
    figures["stranger_401_ms"] = round(took_ms, 2)

    before = rss_mb(pid)
    for _ in range(10):
        status, _ms = await answer_to(port, post_head(None, TOKEN), b"".join(_chunk() for _ in range(100)))
        expect(status, 413, "a chunked 100 MB POST with a token")
    after_token_uploads = rss_mb(pid)

    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        idle = await healthz_ms(http, 200)
        spawn = multiprocessing.get_context("spawn")
        going, stop, (results, sender) = spawn.Event(), spawn.Event(), spawn.Pipe(duplex=False)
        strangers = spawn.Process(target=uploaders, args=(port, 4, going, stop, sender))
        strangers.start()
        try:
            if not await asyncio.to_thread(going.wait, 60):
                raise UnexpectedAnswer("the four uploads did not start within 60 s")
            busy = await healthz_ms(http, 200)
        finally:
            stop.set()
        uploads: Uploads = await asyncio.to_thread(results.recv)
        strangers.join()
        answers = uploads.answers
        # 429 once the address has sent more wrong tokens than it may (each upload is one).
        refused = [a for a in answers if a not in (401, 429, 0)]
        if refused:
            raise UnexpectedAnswer(f"an upload without a token was answered {refused[0]}, not 401 or 429")
        figures |= {
            "healthz_idle_p50_ms": round(statistics.median(idle), 2),
            "healthz_idle_p99_ms": round(p99(idle), 2),
            "healthz_uploading_p50_ms": round(statistics.median(busy), 2),
            "healthz_uploading_p99_ms": round(p99(busy), 2),
            "healthz_stall_ratio": round(p99(busy) / p99(idle), 2),
            "uploads_refused": len(answers),
            "uploaded_mb": round(uploads.sent / MB, 1),
        }

        figures["rss_before_mb"] = round(before, 1)
        figures["rss_growth_token_uploads_mb"] = round(after_token_uploads - before, 1)
        figures["rss_growth_mb"] = round(rss_mb(pid) - before, 1)

        statuses = []
        for n in range(400):
            answer = await http.get("/api/v1/alarms", headers={"Authorization": f"Bearer wrong-{n:036d}"})
            if answer.status_code not in (401, 429):
                raise UnexpectedAnswer(f"a wrong token was answered {answer.status_code}")
            statuses.append(answer.status_code)
        figures["throttle_401"] = statuses.count(401)
        figures["throttle_429"] = statuses.count(429)
    return figures


def _chunk() -> bytes:
    """One chunk of a chunked body: its size in hex, the bytes, CRLF."""
    return f"{len(CHUNK):x}\r\n".encode() + CHUNK + b"\r\n"


async def main() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        site = folder / "site.yaml"
        site.write_text(SITE)
        port, log = free_port(), folder / "server.log"
        server = start_server(site, port, log)
        try:
            await wait_ready(f"http://127.0.0.1:{port}", server, log)
            figures = await measure(port, server.pid)
        finally:
            stop_server(server)
    return {"benchmark": "edge", **figures}


if __name__ == "__main__":
    try:
        result = asyncio.run(main())
    except UnexpectedAnswer as exc:
        sys.exit(f"bench/edge.py failed: {exc}")
    print(json.dumps(result), flush=True)
