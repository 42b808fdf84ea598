"""The API app with a readiness of the test's choosing, served over real HTTP, and Modbus pollers
of a site for it to report on: the tests of /readyz, /metrics and the desk's health banner.

The app is the real one (`create_app`) on a real ops store and users; only the gateway's write and
the telemetry history, which these tests never use, are stand-ins that fail if called.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from api.app import create_app
from api.auth import TokenAuth
from api.context import ApiContext
from facility.aio import cancel_all
from facility.model import Reading
from facility.netutil import free_port
from facility.readiness import Readiness, Reporter
from facility.site import Device, ModbusBinding, Site
from facility.store.ops import OpsStore
from facility.store.users import Role, UserStore
from gateway.modbus.poller import BusPoller
from tests.api.context import without_plant
from tests.simulators.conftest import until

TOKEN = "health-test-token-0123456789"  # a fixed token: an admin


def pump(port: int, device: str = "pump-1") -> str:
    """A booster pump on the Modbus TCP endpoint 127.0.0.1:port, as a line of a site's `devices:`. Its
    timeout is generous, so that a machine busy with other work does not make it miss a poll."""
    binding = f"{{port: {port}, unit: 1, interval: 0.2, timeout: 1.0}}"
    return f"  - {{id: {device}, profile: booster_pump, modbus: {binding}}}\n"


@contextlib.asynccontextmanager
async def served(app: FastAPI) -> AsyncIterator[str]:
    """`app` on a free local port in this event loop, as the runtime serves it; yields its URL."""
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=3,  # an open event stream (a desk) does not end by itself
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await until(lambda: server.started or task.done(), timeout=20)
    if task.done():
        task.result()  # raises what stopped it
        raise RuntimeError(f"the API did not listen on {port}")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 20)


@dataclass
class Served:
    url: str
    ctx: ApiContext
    viewer: str  # a viewer's token (from the ops store's users)


@contextlib.asynccontextmanager
async def health_app(folder: Path, site: Site, reporters: Iterable[Reporter]) -> AsyncIterator[Served]:
    """The API of `site` whose readiness asks `reporters`, served; its ops store lives in `folder`."""
    ops = OpsStore(f"sqlite+aiosqlite:///{folder / 'ops.db'}", site="t")
    await ops.start()
    try:
        users = UserStore(ops)
        viewer = await users.add("vera", Role.VIEWER)
        ctx = without_plant(site, ops, folder / "journal", Readiness(reporters))
        async with served(create_app(ctx, TokenAuth({TOKEN: "admin"}, users))) as url:
            yield Served(url, ctx, viewer)
    finally:
        await ops.close()


@dataclass
class Heard:
    """What a poller told: readings and online changes."""

    readings: list[Reading] = field(default_factory=list)
    status: list[tuple[str, bool]] = field(default_factory=list)

    def publish(self, readings: list[Reading]) -> None:
        self.readings.extend(readings)

    def on_status(self, device: str, online: bool) -> None:
        self.status.append((device, online))

    def dead_letter(self, *_: object) -> None:
        pass


def pollers_of(site: Site, heard: Heard) -> list[BusPoller]:
    """One poller per Modbus bus of the site, as the gateway makes them."""
    buses: dict[str, tuple[ModbusBinding, list[Device]]] = {}
    for device in site.devices:
        if device.modbus:
            buses.setdefault(device.modbus.endpoint, (device.modbus, []))[1].append(device)
    return [
        BusPoller(
            binding, [(d, site.profile_of(d)) for d in members], heard.publish, heard.on_status, heard.dead_letter
        )
        for binding, members in buses.values()
    ]


@contextlib.asynccontextmanager
async def running(*runs: Coroutine[Any, Any, None]) -> AsyncIterator[list[asyncio.Task[None]]]:
    """Tasks of the `run()` coroutines given (pollers, the loop-lag monitor), cancelled on the way out."""
    tasks = [asyncio.create_task(run) for run in runs]
    try:
        yield tasks
    finally:
        await cancel_all(tasks)
