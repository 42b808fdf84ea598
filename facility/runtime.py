"""Wires the parts into one asyncio process: `facility run` and `facility demo`.

The runtime is the one place that knows every package; the packages themselves only know
`facility` (and `api` calls `rules` for lifecycle actions).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from fastapi import APIRouter
from sqlalchemy.engine import make_url

from api.app import create_app
from api.auth import TokenAuth
from api.context import ApiContext
from facility.aio import cancel_all
from facility.broker import EmbeddedBroker
from facility.bus import Bus
from facility.mqtt import MqttClient
from facility.netutil import free_port
from facility.site import InfluxStore, Site
from facility.store.factory import open_telemetry
from facility.store.live import LiveValues
from facility.store.ops import OpsStore
from facility.store.telemetry import TelemetryStore
from facility.store.users import UserStore
from gateway.deadletter import DeadLetters
from gateway.service import Gateway
from gateway.spool import Spool
from gateway.writer import TelemetryWriter
from gateway.writes import AuditedWrites
from rules.notify import Notifier
from rules.service import RulesService
from simulators.control import control_router
from simulators.host import SimulatorHost
from simulators.scenarios import ScenarioPlayer, load_library

log = logging.getLogger(__name__)

NOTIFY_FLUSH_S = 10.0  # at shutdown, how long queued webhook deliveries may take


@dataclass(frozen=True)
class Options:
    host: str = "127.0.0.1"
    port: int = 8000
    tokens: dict[str, str] | None = None  # token -> user name, an admin; the ops store has the other users
    simulate: bool = False  # run the site's simulators in-process and serve /sim
    embedded_broker: bool = False
    data_dir: Path | None = None  # overrides the site's store paths


def ops_url(site: Site, data_dir: Path | None) -> str:
    """The ops store URL with a relative SQLite path resolved against the site (or data dir)."""
    if data_dir is not None:
        return f"sqlite+aiosqlite:///{data_dir / 'ops.db'}"
    url = make_url(site.stores.ops)
    if url.drivername.startswith("sqlite") and url.database and url.database != ":memory:":
        return url.set(database=str(site.path(url.database))).render_as_string(hide_password=False)
    return site.stores.ops


def with_local_endpoints(site: Site, broker_url: str) -> Site:
    """The site with every Modbus endpoint moved to a free local port and MQTT on `broker_url`.

    The demo runs its own plant, so it must never collide with services already on the machine.
    """
    moved: dict[str, int] = {}
    devices = []
    for device in site.devices:
        if device.modbus and not device.modbus.serial:
            port = moved.setdefault(device.modbus.endpoint, free_port())
            binding = device.modbus.model_copy(update={"host": "127.0.0.1", "port": port})
            device = device.model_copy(update={"modbus": binding})
        devices.append(device)
    broker = site.broker.model_copy(update={"url": broker_url, "username": None, "password_env": None})
    return site.model_copy(update={"devices": devices, "broker": broker})


async def serve(
    site: Site,
    options: Options,
    on_ready: Callable[[str, Site], None],
    stop: asyncio.Event | None = None,
) -> None:
    """Run until SIGINT/SIGTERM (uvicorn's handlers) or `stop` is set, then stop every part in
    reverse order of starting."""
    async with AsyncExitStack() as stack:
        if options.embedded_broker:
            broker = EmbeddedBroker()
            await broker.start()
            stack.push_async_callback(broker.stop)
            site = with_local_endpoints(site, broker.url)

        # The simulators first: with_local_endpoints chose their ports by binding port 0 and letting
        # go, and every outgoing connection opened before they bind (MQTT clients) could take one.
        extra: dict[str, APIRouter] = {}
        if options.simulate:
            extra["/sim"] = await _start_simulation(site, stack)

        bus = Bus()
        live = LiveValues()
        bus.on_readings(live.update)

        ops = OpsStore(ops_url(site, options.data_dir))
        await ops.start()
        stack.push_async_callback(ops.close)
        dead_letters = DeadLetters(ops)
        dead_letter_task = asyncio.create_task(dead_letters.run(), name="dead letters")
        stack.push_async_callback(cancel_all, [dead_letter_task])

        # Unwinding runs in reverse: the writer's last flush comes before the store closes.
        writer, telemetry = _telemetry_writer(site, options.data_dir, stack, dead_letters)
        bus.on_readings(writer.add)
        writer_task = asyncio.create_task(writer.run(), name="telemetry writer")
        stack.push_async_callback(cancel_all, [writer_task])

        await _start_notifier(site, bus, ops, stack)
        rules = RulesService(site, bus, ops)
        await rules.start()
        stack.push_async_callback(rules.stop)

        gateway = Gateway(site, bus, dead_letters)
        await gateway.start()
        stack.push_async_callback(gateway.stop)

        writes = AuditedWrites(gateway, ops)
        ctx = ApiContext(site=site, bus=bus, live=live, ops=ops, rules=rules, write=writes, history=telemetry.history)
        app = create_app(ctx, TokenAuth(options.tokens or {}, UserStore(ops)), extra)
        config = uvicorn.Config(
            app,
            host=options.host,
            port=options.port,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=3,
            lifespan="off",
        )
        server = _Server(config, lambda url: on_ready(url, site))
        helpers = [asyncio.create_task(_stop_when(stop, server))] if stop is not None else []
        try:
            await server.serve()
        finally:
            await cancel_all(helpers)
        if not server.started:
            raise RuntimeError(f"the API could not listen on {options.host}:{options.port}")


def _telemetry_writer(
    site: Site, data_dir: Path | None, stack: AsyncExitStack, dead_letters: DeadLetters
) -> tuple[TelemetryWriter, TelemetryStore]:
    """The telemetry store of the site (or of the data dir), and a writer in front of it that spools
    to disk while the store is down."""
    stores = site.stores
    base = data_dir or site.path(".")
    if data_dir is not None:
        local = {"telemetry": "telemetry.db"} if isinstance(stores.telemetry, str) else {}
        stores = stores.model_copy(update={"spool": "spool", **local})
    telemetry = open_telemetry(stores, base)
    stack.callback(telemetry.close)
    spool_dir = Path(stores.spool)
    spool = Spool(spool_dir if spool_dir.is_absolute() else base / spool_dir)
    batch_size = stores.telemetry.batch_size if isinstance(stores.telemetry, InfluxStore) else 5000
    return TelemetryWriter(telemetry, spool, dead_letter=dead_letters.put, batch_size=batch_size), telemetry


async def _start_notifier(site: Site, bus: Bus, ops: OpsStore, stack: AsyncExitStack) -> None:
    """Alarm, task and plan events to MQTT (a connection of its own) and the site's webhooks.
    Started before the rules, so that it hears of the first alarm; stopped after them, once what
    is queued has gone out (or become a dead letter)."""
    publish = None
    if site.notifications.mqtt:
        broker = site.broker
        client = MqttClient(
            broker.host,
            broker.port,
            client_id=f"facility-events-{site.site.id}",  # a kept session: QoS 1 events wait out a reconnect
            username=broker.username,
            password=broker.password,
        )
        await client.start()
        stack.push_async_callback(client.stop)
        publish = client.publish
    notifier = Notifier(site, ops, publish)
    task = asyncio.create_task(notifier.run(bus), name="notifications")
    await notifier.subscribed.wait()

    async def stop() -> None:
        try:
            await asyncio.wait_for(notifier.flush(), NOTIFY_FLUSH_S)
        except TimeoutError:
            log.warning("notifications still queued after %gs at shutdown; see the dead letters", NOTIFY_FLUSH_S)
        await cancel_all([task])

    stack.push_async_callback(stop)


async def _stop_when(stop: asyncio.Event, server: uvicorn.Server) -> None:
    await stop.wait()
    server.should_exit = True


class _Server(uvicorn.Server):
    """uvicorn's server, telling its URL once it listens (the port may have been 0)."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[str], None]) -> None:
        super().__init__(config)
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            self._on_started(f"http://{host}:{port}")


async def _start_simulation(site: Site, stack: AsyncExitStack) -> APIRouter:
    """Start the site's simulators (stopped by `stack`) and return their control API."""
    host = SimulatorHost(site)
    player = ScenarioPlayer(host, load_library([site.path(p) for p in site.scenarios]))
    await host.start()
    stack.push_async_callback(host.stop)
    stack.push_async_callback(player.stop_all)
    return control_router(host, player)


async def run_simulators(site: Site, host: str, port: int, token: str) -> None:
    """The site's simulators alone, with their control API under /sim, until SIGINT/SIGTERM."""
    from fastapi import Depends, FastAPI

    async with AsyncExitStack() as stack:
        app = FastAPI(title="Facility simulators")
        router = await _start_simulation(site, stack)
        app.include_router(router, prefix="/sim", dependencies=[Depends(TokenAuth({token: "sim"}))])
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off")
        await uvicorn.Server(config).serve()
