"""The whole system in the test's own event loop, and a client of its event stream."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from facility.netutil import free_port
from facility.site import Site, load_site
from facility_app.runtime import Options, serve

TOKEN = "test-token-0123456789-abcdefghijkl"  # as an operator gives one: 32 characters or more
T = TypeVar("T")


def write_site(
    folder: Path,
    broker_url: str,
    modbus_port: int,
    *,
    poll: str = "200ms",
    extra: str = "",
    api: dict[str, Any] | None = None,
) -> Path:
    """A small estate: one booster pump on Modbus TCP and one elevator on MQTT. `api` is the site
    file's `api:` section (limits of the HTTP edge, such as a test client's own change limit)."""
    path = folder / "site.yaml"
    path.write_text(
        f"""
site: {{id: test-{uuid.uuid4().hex[:8]}, name: Test estate, timezone: Asia/Shanghai}}
broker: {{url: "{broker_url}"}}
stores: {{telemetry: var/telemetry.db, ops: "sqlite+aiosqlite:///var/ops.db"}}
{f"api: {json.dumps(api)}" if api else ""}
people:  # whom tasks may be given to, with the teams they are in
  - {{id: li, name: 李工 / Engineer Li, team: plumbing}}
  - {{id: wu, name: 吴师傅 / Master Wu, team: elevator-vendor}}
devices:
  - id: pump-1
    name: Pump 1
    profile: booster_pump
    location: {{building: B2, floor: B1, room: pump room}}
    modbus: {{host: 127.0.0.1, port: {modbus_port}, unit: 1, interval: {poll}, timeout: 500ms}}
  - id: lift-1
    name: Lift 1
    profile: elevator
    location: {{building: B1}}
    mqtt: {{topic: test/lifts/lift-1, interval: 200ms}}
{extra}"""
    )
    return path


@dataclass
class Event:
    id: int
    kind: str
    data: dict[str, Any]


class EventStream:
    """Follows /api/v1/stream and lets a test wait for the event it expects."""

    def __init__(self, base_url: str, token: str = TOKEN, last_event_id: int | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        if last_event_id is not None:  # resume: the server first replays what came after it
            headers["Last-Event-ID"] = str(last_event_id)
        self._client = httpx.AsyncClient(base_url=base_url, headers=headers, timeout=None)
        self._events: list[Event] = []
        self._arrived = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    async def __aenter__(self) -> EventStream:
        self._task = asyncio.create_task(self._read())
        await asyncio.wait_for(self._connected.wait(), 10)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._client.aclose()

    async def _read(self) -> None:
        async with self._client.stream("GET", "/api/v1/stream") as response:
            response.raise_for_status()
            fields: dict[str, str] = {}
            async for line in response.aiter_lines():
                if line.startswith(": connected"):
                    self._connected.set()
                elif line == "" and "data" in fields:
                    event = Event(int(fields["id"]), fields["event"], json.loads(fields["data"]))
                    fields = {}
                    async with self._arrived:
                        self._events.append(event)
                        self._arrived.notify_all()
                elif ":" in line and not line.startswith(":"):
                    name, _, value = line.partition(":")
                    fields[name] = value.strip()

    @property
    def events(self) -> list[Event]:
        """Every event received so far, in order."""
        return list(self._events)

    async def wait_for(self, match: Callable[[Event], bool], timeout: float, after: int = 0) -> Event:
        """The first event numbered above `after` (already received or yet to come) that matches;
        TimeoutError otherwise."""

        def found() -> Event | None:
            return next((e for e in self._events if e.id > after and match(e)), None)

        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: found() is not None), timeout)
        event = found()
        assert event is not None
        return event


def alarm(rule: str, state: str) -> Callable[[Event], bool]:
    return lambda e: e.kind == "alarm" and e.data["rule"] == rule and e.data["state"] == state


@contextlib.asynccontextmanager
async def running_system(site_path: Path, data_dir: Path) -> AsyncIterator[tuple[str, Site]]:
    """Simulators, gateway, rules and API for the site, on real ports; yields (base URL, site)."""
    site = load_site(site_path)
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    options = Options(port=free_port(), tokens={TOKEN: "duty"}, simulate=True, data_dir=data_dir)
    task = asyncio.create_task(serve(site, options, lambda url, _s: ready.set_result(url), stop))
    done, _ = await asyncio.wait({ready, task}, timeout=20, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()  # raises what stopped it
    if ready not in done:
        raise TimeoutError("the system did not start within 20 s")
    try:
        yield ready.result(), site
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


async def eventually(check: Callable[[], Awaitable[T | None]], timeout: float, interval: float = 0.05) -> T:
    """Poll `check` until it returns something truthy; TimeoutError with the last value otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout}s (last: {result!r})")
        await asyncio.sleep(interval)
