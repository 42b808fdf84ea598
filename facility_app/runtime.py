"""Wires the parts into one asyncio process: `facility run` and `facility demo`.

The runtime is the one place that knows every package; the packages themselves only know
`facility` (and `api` calls `rules` for lifecycle actions).

Stopping: SIGTERM (how systemd, Docker and Kubernetes stop a service) and SIGINT drain the
pipeline in order, within STOP_S in all: no more polling or MQTT reading; rule outcomes into
their journal; readings to the store or the spool; then the MQTT acknowledgements owed for them,
and the notifications queued. Each step logs what it drained and what it left. A second signal
stops at once; what was not acknowledged is delivered again by the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
from sqlalchemy.engine import make_url
from starlette.types import ASGIApp

from api.app import ScopedRouter, create_app
from api.auth import TokenAuth
from api.context import ApiContext
from api.edge import Edge
from facility.aio import cancel_all
from facility.broker import EmbeddedBroker
from facility.bus import Bus
from facility.looplag import LoopLag
from facility.mqtt import AckAfter, MqttClient
from facility.readiness import Readiness
from facility.site import Api, InfluxStore, Site
from facility.store.factory import open_telemetry
from facility.store.live import LiveValues
from facility.store.ops import DeadLetterLimits, OpsStore
from facility.store.telemetry import TelemetryStore
from facility.store.users import UserStore
from gateway.deadletter import DeadLetters
from gateway.service import Gateway
from gateway.spool import Spool
from gateway.writer import TelemetryWriter
from gateway.writes import AuditedWrites
from rules.notify import Notifier
from rules.service import RulesService
from simulators.control import control_router, everything
from simulators.host import SimulatorHost
from simulators.scenarios import ScenarioPlayer, load_library

log = logging.getLogger(__name__)

OPS_START_WAIT_S = 5.0  # at start, how long to wait for the ops store before going on without it
STOP_S = 8.0  # the whole drain at a stop: inside Docker's 10 s between SIGTERM and SIGKILL
NOTIFY_FLUSH_S = 3.0  # ... of which queued webhook deliveries may take this much


@dataclass(frozen=True)
class Options:
    host: str = "127.0.0.1"
    port: int = 8000
    tokens: dict[str, str] | None = None  # token -> user name, an admin; the ops store has the other users
    simulate: bool = False  # run the site's simulators in-process and serve /sim
    embedded_broker: bool = False
    local_endpoints: bool = False  # the simulators listen on ports of their choosing; the gateway is told them
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
    """The site with MQTT on `broker_url`, without the site's broker login.

    The demo runs its own plant, so it must never collide with services already on the machine:
    its Modbus endpoints move too, but only once the simulators listen (`Options.local_endpoints`),
    on ports the system chose for them; a port found free and let go could be taken meanwhile.
    """
    broker = site.broker.model_copy(update={"url": broker_url, "username": None, "password_env": None})
    return site.model_copy(update={"broker": broker})


async def serve(
    site: Site,
    options: Options,
    on_ready: Callable[[str, Site], None],
    stop: asyncio.Event | None = None,
) -> None:
    """Run until SIGINT/SIGTERM or `stop` is set, then drain the pipeline in order (see the module
    docstring) and stop every other part in reverse order of starting."""
    stopping = stop or asyncio.Event()
    with _signals(stopping):
        async with AsyncExitStack() as stack:
            await _run(site, options, on_ready, stack, stopping)


async def _run(
    site: Site,
    options: Options,
    on_ready: Callable[[str, Site], None],
    stack: AsyncExitStack,
    stopping: asyncio.Event,
) -> None:
    if options.embedded_broker:
        broker = EmbeddedBroker()
        await broker.start()
        stack.push_async_callback(broker.stop)
        site = with_local_endpoints(site, broker.url)

    # The simulators first: with local endpoints they choose their Modbus ports, and the gateway
    # (and the banner) are given the site with those ports.
    extra: dict[str, ScopedRouter] = {}
    if options.simulate:
        extra["/sim"], site = await _start_simulation(site, stack, any_port=options.local_endpoints)

    bus = Bus()
    live = LiveValues()
    bus.on_readings(live.update)
    bus.on_status(live.device_status)  # a device that says it is online shows so before its values come
    readiness = Readiness()
    lag = LoopLag()
    readiness.add(lag)
    lag_task = asyncio.create_task(lag.run(), name="event loop lag")
    stack.push_async_callback(cancel_all, [lag_task])

    ops = OpsStore(ops_url(site, options.data_dir), dead_letters=DeadLetterLimits.of(site.stores))
    await ops.start(wait=False)  # a store that is down delays recording, never raising, an alarm
    try:
        await asyncio.wait_for(ops.wait_available(), OPS_START_WAIT_S)
    except TimeoutError:
        log.warning(
            "the ops store does not answer after %g s; starting without it: alarms are raised and shown, "
            "and recorded once it answers",
            OPS_START_WAIT_S,
        )
    stack.push_async_callback(ops.close)
    readiness.add(ops)
    dead_letters = DeadLetters(ops)
    dead_letter_task = asyncio.create_task(dead_letters.run(), name="dead letters")
    stack.push_async_callback(cancel_all, [dead_letter_task])

    writer, telemetry = _telemetry_writer(site, options.data_dir, stack, dead_letters)
    readiness.add(writer)
    pipeline = _Pipeline(writer=writer)
    stack.push_async_callback(pipeline.drain)  # runs before the stores above close
    bus.on_readings(writer.add)
    pipeline.writer_task = asyncio.create_task(writer.run(), name="telemetry writer")

    outbox = local_dir(site, options.data_dir, "journal") / "notifications.json"
    pipeline.notifier_stop = await _start_notifier(site, bus, ops, pipeline.closers, readiness, outbox)
    rules = pipeline.rules = RulesService(
        site, bus, ops, local_dir(site, options.data_dir, "journal"), local_dir(site, options.data_dir, "attachments")
    )
    await rules.start()
    readiness.add(rules.outcomes)
    writer.alarm_points = _judged_points(rules)

    gateway = pipeline.gateway = Gateway(site, bus, dead_letters, ack_after=_both_settled(writer, rules))
    readiness.add(gateway)
    await gateway.start()
    for poller in gateway.pollers:
        readiness.add(poller)

    writes = AuditedWrites(gateway, ops)
    ctx = ApiContext(
        site=site,
        bus=bus,
        live=live,
        ops=ops,
        rules=rules,
        write=writes,
        history=telemetry.history,
        readiness=readiness,
    )
    app = create_app(ctx, TokenAuth(options.tokens or {}, UserStore(ops), site.api), extra)
    config = http_config(app, options.host, options.port, site.api)
    server = _Server(config, lambda url: on_ready(url, site))
    helper = asyncio.create_task(_stop_when(stopping, server))
    try:
        await server.serve()
    finally:
        await cancel_all([helper])
    if not server.started and not stopping.is_set():
        raise RuntimeError(f"the API could not listen on {options.host}:{options.port}")


def http_config(app: ASGIApp, host: str, port: int, api: Api) -> uvicorn.Config:
    """uvicorn for the API: no server banner, and X-Forwarded-For believed only from the site's
    trusted proxies (uvicorn's own default trusts loopback, which any local process is)."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=1,  # event streams never end by themselves: do not wait on them
        lifespan="off",
        server_header=False,
        proxy_headers=bool(api.trusted_proxies),
        forwarded_allow_ips=list(api.trusted_proxies),
    )


def _both_settled(writer: TelemetryWriter, rules: RulesService) -> AckAfter:
    """When what a batch of MQTT messages carried is safe: its readings in the store or the spool,
    and the rule outcomes they caused in their journal (the engine judges a batch as it is
    handed on, so those outcomes are journaled by the time this is asked)."""

    def settled() -> asyncio.Future[None] | None:
        waits = [w for w in (writer.settled(), rules.outcomes.settled()) if w is not None]
        if len(waits) < 2:
            return waits[0] if waits else None
        return asyncio.ensure_future(_all(waits))

    return settled


async def _all(waits: list[asyncio.Future[None]]) -> None:
    for wait in waits:
        await wait


def _judged_points(rules: RulesService) -> Callable[[], frozenset[tuple[str, str]]]:
    """The (device, point) pairs the running rules read, worked out again after a reload: the
    spool keeps those readings in its alarm lane."""
    last: list[object] = [None, frozenset()]

    def points() -> frozenset[tuple[str, str]]:
        if rules.rules is not last[0]:
            last[:] = [rules.rules, frozenset((d, p) for rule in rules.rules for d in rule.devices for p in rule.reads)]
        judged = last[1]
        assert isinstance(judged, frozenset)
        return judged

    return points


@dataclass
class _Pipeline:
    """What must be drained in order at a stop, filled in as the parts start."""

    writer: TelemetryWriter
    writer_task: asyncio.Task[None] | None = None
    rules: RulesService | None = None
    gateway: Gateway | None = None
    notifier_stop: Callable[[], Awaitable[None]] | None = None
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)  # last: MQTT clients

    async def drain(self) -> None:
        began = time.monotonic()
        log.info("stopping: draining the pipeline (at most %g s)", STOP_S)
        try:
            async with asyncio.timeout(STOP_S):
                if self.gateway is not None:
                    await self.gateway.stop_reading()  # nothing new comes in
                if self.rules is not None:
                    await self.rules.stop()  # outcomes recorded, or kept in their journal
                if self.writer_task is not None:
                    await cancel_all([self.writer_task])  # readings to the store or the spool
                if self.gateway is not None:
                    await self.gateway.stop()  # the acknowledgements they were waiting for
                if self.notifier_stop is not None:
                    await self.notifier_stop()
        except TimeoutError:
            log.error("stopping: the drain took over %g s and was cut short", STOP_S)
        finally:
            for close in reversed(self.closers):
                with contextlib.suppress(Exception):
                    await close()
        log.info("stopped in %.1f s", time.monotonic() - began)


@contextlib.contextmanager
def _signals(stopping: asyncio.Event) -> Iterator[None]:
    """SIGTERM and SIGINT start the drain; a second one stops at once. In place of uvicorn's own
    handlers, which re-raise the signal once the server returns and so skip the drain."""
    if threading.current_thread() is not threading.main_thread():
        yield  # a test running the service in a thread stops it with its `stop` event
        return
    loop = asyncio.get_running_loop()
    caught: list[int] = []

    def handle(sig: int) -> None:
        caught.append(sig)
        if len(caught) > 1:
            log.warning("%s after %s: stopping at once", signal.Signals(sig).name, signal.Signals(caught[0]).name)
            logging.shutdown()
            os._exit(128 + sig)
        log.info("%s: stopping; a second one stops at once", signal.Signals(sig).name)
        stopping.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, handle, sig)
    try:
        yield
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def local_dir(site: Site, data_dir: Path | None, name: str) -> Path:
    """A folder on this machine's disk for the spool, the outcome journal or the tasks' attachments:
    in the data dir, or (journal, attachments) beside the site's spool."""
    if data_dir is not None:
        return data_dir / name
    spool = Path(site.stores.spool)
    spool = spool if spool.is_absolute() else site.path(".") / spool
    return spool if name == "spool" else spool.parent / name


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
    spool = Spool(local_dir(site, data_dir, "spool"), limit_bytes=stores.spool_limit_mb * 1_000_000)
    batch_size = stores.telemetry.batch_size if isinstance(stores.telemetry, InfluxStore) else 5000
    return TelemetryWriter(telemetry, spool, dead_letter=dead_letters.put, batch_size=batch_size), telemetry


async def _start_notifier(
    site: Site,
    bus: Bus,
    ops: OpsStore,
    closers: list[Callable[[], Awaitable[None]]],
    readiness: Readiness,
    outbox: Path,
) -> Callable[[], Awaitable[None]]:
    """Alarm, task and plan events to MQTT (a connection of its own) and the site's webhooks.
    Started before the rules, so that it hears of the first alarm; stopped after them, once what
    is queued has gone out (or become a dead letter) or, after NOTIFY_FLUSH_S, been kept in
    `outbox` for the next start. Returns its stop."""
    publish = None
    if site.notifications.mqtt:
        client = MqttClient.of(
            site.broker,
            client_id=f"facility-events-{site.site.id}",  # a kept session: QoS 1 events wait out a reconnect
            name="events",
        )
        await client.start(required=False)  # events wait in paho (QoS 1) until the broker answers
        readiness.add(client)
        closers.append(client.stop)
        publish = client.publish
    notifier = Notifier(site, ops, publish, outbox=outbox)
    task = asyncio.create_task(notifier.run(bus), name="notifications")
    await notifier.subscribed.wait()

    async def stop() -> None:
        try:
            await asyncio.wait_for(notifier.flush(), NOTIFY_FLUSH_S)
        except TimeoutError:
            log.warning("webhook notifications still queued after %g s at shutdown", NOTIFY_FLUSH_S)
        await cancel_all([task])

    closers.append(lambda: cancel_all([task]))  # when the drain was cut short before stop()
    return stop


async def _stop_when(stop: asyncio.Event, server: uvicorn.Server) -> None:
    await stop.wait()
    server.should_exit = True


class _Server(uvicorn.Server):
    """uvicorn's server, telling its URL once it listens (the port may have been 0), and leaving
    the signals to the runtime (`_signals`)."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[str], None]) -> None:
        super().__init__(config)
        self._on_started = on_started

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            self._on_started(f"http://{host}:{port}")


async def _start_simulation(site: Site, stack: AsyncExitStack, any_port: bool = False) -> tuple[ScopedRouter, Site]:
    """Start the site's simulators (stopped by `stack`); return their control API, built for the
    scope (the visible devices) of the asking user, and the site with the ports they listen on."""
    host = SimulatorHost(site, any_port=any_port)
    player = ScenarioPlayer(host, load_library([site.path(p) for p in site.scenarios]))
    await host.start()
    stack.push_async_callback(host.stop)
    stack.push_async_callback(player.stop_all)
    return (lambda scope: control_router(host, player, scope=scope)), host.site


async def run_simulators(site: Site, host: str, port: int, token: str) -> None:
    """The site's simulators alone, with their control API under /sim, until SIGINT/SIGTERM."""
    from fastapi import Depends, FastAPI

    async with AsyncExitStack() as stack:
        # The estate's app has the docs; this one serves /sim alone, behind the same edge.
        app = FastAPI(title="Facility simulators", docs_url=None, redoc_url=None, openapi_url=None)
        auth = TokenAuth({token: "sim"}, settings=site.api)
        control, _ = await _start_simulation(site, stack)
        router = control(everything)  # its one token sees the whole plant
        app.include_router(router, prefix="/sim", dependencies=[Depends(auth)])
        app.add_middleware(Edge, auth=auth, settings=site.api)
        await uvicorn.Server(http_config(app, host, port, site.api)).serve()
