"""Wires the parts into one asyncio process: `facility run` and `facility demo`.

By default a process runs every part; `facility run --parts` (`Options.parts`) chooses some, and a
part that runs elsewhere is reached over MQTT (docs/scale-out.md): a gateway without the writers
sends its readings up (gateway.uplink) and takes the centre's writes (gateway.remote_writes);
writers and rules without the gateway read the estate's readings (gateway.feed); a rule worker
judges only while it owns the site (facility.store.lease); a process without the API serves only
its probes.

The runtime is the one place that knows every package; the packages themselves only know
`facility` (and `api` calls `rules` for lifecycle actions). What each part needs to start lives
beside it in this package: `stores` (ops and telemetry stores, the writer), `notifications`,
`simulation`, `server` (uvicorn) and `shutdown` (the signals and the drain in order, see there).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

from starlette.types import ASGIApp

from api.app import create_app, create_probes
from api.auth import TokenAuth
from api.context import ApiContext
from api.deps import visible_devices
from facility.aio import cancel_all
from facility.broker import EmbeddedBroker
from facility.bus import Bus, LocalBus
from facility.looplag import LoopLag
from facility.mqtt_delivery import AckAfter
from facility.readiness import Readiness
from facility.site import Site
from facility.store.factory import open_telemetry
from facility.store.lease import SiteLease, needs_lease
from facility.store.live import LiveValues
from facility.store.ops import OpsStore
from facility.store.telemetry import TelemetryStore
from facility.store.users import UserStore
from facility_app.notifications import start_notifier
from facility_app.places import local_dir, ops_url
from facility_app.server import http_config, serve_until
from facility_app.shutdown import Pipeline, signals
from facility_app.simulation import start_simulation
from facility_app.stores import constant, judged_points, rule_points, start_ops_store, telemetry_writer, uplink_writer
from gateway.deadletter import DeadLetters
from gateway.feed import ReadingsFeed
from gateway.remote_writes import RemoteGateway, WriteDoor
from gateway.service import Gateway
from gateway.writer import TelemetryWriter
from gateway.writes import AuditedWrites, Door
from rules.ruleset import load_rules
from rules.service import RulesService
from simulators import control
from simulators.control import Simulation

log = logging.getLogger(__name__)

PARTS = frozenset({"gateway", "writer", "rules", "api"})  # `facility run --parts` (facility_app.cli.serve)


@dataclass(frozen=True)
class Options:
    """How this process serves a site, beyond what the site file says: what `facility run` and
    `facility demo` differ in, and what a test chooses."""

    host: str = "127.0.0.1"
    port: int = 8000
    tokens: dict[str, str] | None = None  # token -> user name, an admin; the ops store has the other users
    simulate: bool = False  # run the site's simulators in-process and serve /sim
    embedded_broker: bool = False
    local_endpoints: bool = False  # the simulators listen on ports of their choosing; the gateway is told them
    data_dir: Path | None = None  # overrides the site's store paths
    parts: frozenset[str] = PARTS  # what this process runs (docs/scale-out.md); all of them by default
    instance: str = "1"  # which process of several running the same parts: part of its MQTT client ids


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
    """Run until SIGINT/SIGTERM or `stop` is set, then drain the pipeline in order (see
    `facility_app.shutdown`) and stop every other part in reverse order of starting."""
    stopping = stop or asyncio.Event()
    with signals(stopping):
        async with AsyncExitStack() as stack:
            await _run(site, options, on_ready, stack, stopping)


async def _run(
    site: Site,
    options: Options,
    on_ready: Callable[[str, Site], None],
    stack: AsyncExitStack,
    stopping: asyncio.Event,
) -> None:
    """Start the parts downstream first, so that each one upstream has somewhere to hand on to."""
    if options.embedded_broker:
        broker = EmbeddedBroker()
        await broker.start()
        stack.push_async_callback(broker.stop)
        site = with_local_endpoints(site, broker.url)

    # The simulators first: with local endpoints they choose their Modbus ports, and the gateway
    # (and the banner) are given the site with those ports.
    simulation: Simulation | None = None
    if options.simulate:
        simulation, site = await start_simulation(site, stack, visible_devices, any_port=options.local_endpoints)

    bus = LocalBus()
    live = LiveValues()
    bus.on_readings(live.update)
    bus.on_status(live.device_status)  # a device that says it is online shows so before its values come
    readiness = _readiness(stack)
    ops = await start_ops_store(site, options.data_dir, stack, readiness)
    dead_letters = DeadLetters(ops)
    dead_letter_task = asyncio.create_task(dead_letters.run(), name="dead letters")
    stack.push_async_callback(cancel_all, [dead_letter_task])

    pipeline = Pipeline(writer=_writer(site, options, stack, bus, dead_letters, readiness))
    stack.push_async_callback(pipeline.drain)  # runs before the stores above close
    if pipeline.writer is not None:
        bus.on_readings(pipeline.writer.add)
        pipeline.writer_task = asyncio.create_task(pipeline.writer.run(), name="telemetry writer")
    owning = await _start_judging(site, options, stack, bus, dead_letters, pipeline, readiness, ops, stopping)
    door = await _start_doors(site, options, pipeline, ops, readiness)

    # The store the writer here fills (not an uplink: that keeps no history).
    telemetry = pipeline.writer.store if pipeline.writer is not None and "writer" in options.parts else None
    app = _app(site, options, bus, live, ops, pipeline, telemetry, door, stack, readiness, simulation)
    config = http_config(app, options.host, options.port, site.api)
    await serve_until(config, lambda url: on_ready(url, site), stopping)
    if owning is not None and owning.done() and not owning.cancelled() and (error := owning.exception()):
        raise error  # exit 1, for the supervisor to start it again, as a standby


async def _start_judging(
    site: Site,
    options: Options,
    stack: AsyncExitStack,
    bus: Bus,
    dead_letters: DeadLetters,
    pipeline: Pipeline,
    readiness: Readiness,
    ops: OpsStore,
    stopping: asyncio.Event,
) -> asyncio.Task[None] | None:
    """The rules (if they run here), then where the readings come from. A rule worker does both
    only once it owns the site, in the task returned, which ends in the error that stopped it."""
    if not _leased(site, options):
        if "rules" in options.parts:
            await _start_rules(site, options.data_dir, bus, ops, pipeline, readiness)
        elif pipeline.writer is not None:
            pipeline.writer.alarm_points = constant(rule_points(load_rules(site)))
        await _start_readings(site, options, bus, dead_letters, pipeline, readiness)
        return None
    lease = SiteLease(ops_url(site, options.data_dir), site.site.id)
    pipeline.closers.append(lease.release)  # after the drain: the next owner finds everything recorded
    readiness.add(lease)
    owning = asyncio.create_task(
        _judge_when_owned(site, options, bus, dead_letters, pipeline, readiness, ops, lease, stopping),
        name="rules lease",
    )
    stack.push_async_callback(cancel_all, [owning])
    return owning


async def _start_doors(
    site: Site, options: Options, pipeline: Pipeline, ops: OpsStore, readiness: Readiness
) -> Door | None:
    """Where this process's API writes a point, and the estate's door for the centre's writes:
    the gateway here; else the estate's gateway in its own process, over MQTT (both sides of
    gateway.remote_writes). An estate whose readings go up takes the centre's writes."""
    if isinstance(pipeline.gateway, Gateway):
        if "writer" not in options.parts:
            estate = WriteDoor(site, AuditedWrites(pipeline.gateway, ops), _client_id("write-door", site, options))
            await estate.start()
            readiness.add(estate)
            pipeline.closers.append(estate.stop)
        return pipeline.gateway
    if "api" not in options.parts:
        return None
    remote = RemoteGateway(site, _client_id("writes", site, options))
    await remote.start()
    readiness.add(remote)
    pipeline.closers.append(remote.stop)
    return remote


def _leased(site: Site, options: Options) -> bool:
    """Whether this process is a rule worker that judges only while it owns the site: rules
    without the gateway or the API, on an ops store several processes share (facility.store.lease)."""
    worker = "rules" in options.parts and not options.parts & {"gateway", "api"}
    return worker and needs_lease(ops_url(site, options.data_dir))


async def _judge_when_owned(
    site: Site,
    options: Options,
    bus: Bus,
    dead_letters: DeadLetters,
    pipeline: Pipeline,
    readiness: Readiness,
    ops: OpsStore,
    lease: SiteLease,
    stopping: asyncio.Event,
) -> None:
    """A rule worker: stand by until this process owns the site, then judge it (its conditions
    rebuilt from the open alarms and tasks, its readings from where the last owner stopped
    acknowledging), until it stops or cannot show it still owns the site."""
    if not await lease.acquire(stopping):
        return
    try:
        await _start_rules(site, options.data_dir, bus, ops, pipeline, readiness)
        await _start_readings(site, options, bus, dead_letters, pipeline, readiness)
        await lease.held()
    except Exception as exc:  # the lease lost, or the rules unable to start: an owner that does not judge
        log.error("rules of site %s: %s; stopping at once", site.site.id, exc)
        stopping.set()
        raise


def _writer(
    site: Site, options: Options, stack: AsyncExitStack, bus: Bus, dead_letters: DeadLetters, readiness: Readiness
) -> TelemetryWriter | None:
    """The telemetry writer of this process: into the site's store where the writers run here; up
    to the centre where only the gateway does (the devices' status with it); none where neither
    does (a rule worker)."""
    if "writer" in options.parts:
        writer, _ = telemetry_writer(site, options.data_dir, stack, dead_letters)
    elif "gateway" in options.parts:
        writer, uplink = uplink_writer(site, options.data_dir, stack, dead_letters, _client_id("uplink", site, options))
        bus.on_status(uplink.send_status)
        readiness.add(uplink)
    else:
        return None
    readiness.add(writer)
    return writer


async def _start_rules(
    site: Site, data_dir: Path | None, bus: Bus, ops: OpsStore, pipeline: Pipeline, readiness: Readiness
) -> None:
    """The notifier, then the rules (each into `pipeline`, to be drained): the rules hear of a
    reading only once their outcomes have somewhere to go."""
    journal = local_dir(site, data_dir, "journal")
    outbox = journal / "notifications.json"
    pipeline.notifier_stop = await start_notifier(site, bus, ops, pipeline.closers, readiness, outbox)
    rules = pipeline.rules = RulesService(site, bus, ops, journal, local_dir(site, data_dir, "attachments"))
    await rules.start()
    readiness.add(rules.outcomes)
    if pipeline.writer is not None:
        pipeline.writer.alarm_points = judged_points(rules)


async def _start_readings(
    site: Site, options: Options, bus: Bus, dead_letters: DeadLetters, pipeline: Pipeline, readiness: Readiness
) -> None:
    """Where this process's readings come from: the devices, through the gateway; or, where the
    gateway runs elsewhere, the estate's readings feed (shared among the writers that run alone)."""
    settled = _settled(pipeline.writer, pipeline.rules)
    if "gateway" in options.parts:
        gateway = pipeline.gateway = Gateway(site, bus, dead_letters, ack_after=settled)
        readiness.add(gateway)
        await gateway.start()
        for poller in gateway.pollers:
            readiness.add(poller)
        return
    if pipeline.writer is None and pipeline.rules is None:
        return  # the API alone: it reads the stores
    alone = pipeline.rules is None
    feed = pipeline.gateway = ReadingsFeed(
        site,
        bus,
        dead_letters,
        # The rules' session is the site's, not the process's: a worker that takes over a site
        # takes over what its last owner had not acknowledged.
        client_id=_client_id("writer", site, options) if alone else f"facility-rules-{site.site.id}",
        shared_group=f"facility-writers-{site.site.id}" if alone else None,
        ack_after=settled,
    )
    readiness.add(feed)
    await feed.start()


def _client_id(part: str, site: Site, options: Options) -> str:
    """The MQTT client id of a part of this process: the same after a restart, so that the broker
    gives back the session it kept; another per instance, so that two processes never share one."""
    return f"facility-{part}-{site.site.id}-{options.instance}"


def _readiness(stack: AsyncExitStack) -> Readiness:
    """The readiness view, with the event loop's lag watched from the start (stopped by `stack`)."""
    readiness = Readiness()
    lag = LoopLag()
    readiness.add(lag)
    lag_task = asyncio.create_task(lag.run(), name="event loop lag")
    stack.push_async_callback(cancel_all, [lag_task])
    return readiness


def _app(
    site: Site,
    options: Options,
    bus: Bus,
    live: LiveValues,
    ops: OpsStore,
    pipeline: Pipeline,
    telemetry: TelemetryStore | None,
    door: Door | None,
    stack: AsyncExitStack,
    readiness: Readiness,
    simulation: Simulation | None,
) -> ASGIApp:
    """The API over the running parts, with the simulators' control (/sim) beside it when they run;
    without the `api` part, only the probes (/healthz, /readyz, /metrics) that every process serves."""
    auth = TokenAuth(options.tokens or {}, UserStore(ops), site.api)
    if "api" not in options.parts:
        return create_probes(site, readiness, auth)
    assert pipeline.rules is not None  # the command line refuses the api without the rules
    if telemetry is None:
        telemetry = open_telemetry(site.stores, site.path("."), site.site.id)  # history from the store the writers fill
        stack.callback(telemetry.close)
    ctx = ApiContext(
        site=site,
        bus=bus,
        live=live,
        ops=ops,
        rules=pipeline.rules.lifecycle,
        write=AuditedWrites(door, ops),
        history=telemetry.history,
        readiness=readiness,
    )
    app = create_app(ctx, auth, None if simulation is None else {"/sim": control.router})
    app.state.simulation = simulation  # what the /sim routes act on
    return app


def _settled(writer: TelemetryWriter | None, rules: RulesService | None) -> AckAfter:
    """When what a batch of MQTT messages carried is safe: its readings in the store or the spool,
    and the rule outcomes they caused in their journal (the engine judges a batch as it is
    handed on, so those outcomes are journaled by the time this is asked)."""

    def settled() -> asyncio.Future[None] | None:
        waits = [w for w in (_wait(writer), _wait(rules)) if w is not None]
        if len(waits) < 2:
            return waits[0] if waits else None
        return asyncio.ensure_future(_all(waits))

    return settled


def _wait(part: TelemetryWriter | RulesService | None) -> asyncio.Future[None] | None:
    """What a part of this process is still making safe; None: nothing, or the part is not here."""
    if isinstance(part, RulesService):
        return part.outcomes.settled()
    return None if part is None else part.settled()


async def _all(waits: list[asyncio.Future[None]]) -> None:
    """Settled once every one of `waits` is (one future for the ack that waits on them all)."""
    for wait in waits:
        await wait
