"""The stores as the runtime opens them: the ops store, the telemetry store and the writer in
front of it (where each one is: `places`).

`bench/ingest.py` builds its pipeline with `telemetry_writer`, so that it measures the writer the
service runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from contextlib import AsyncExitStack
from pathlib import Path

from facility.readiness import Readiness
from facility.site import InfluxStore, Site
from facility.store.dead_letters import DeadLetterLimits
from facility.store.factory import open_telemetry
from facility.store.ops import OpsStore
from facility.store.telemetry import TelemetryStore
from facility_app.places import local_dir, ops_url
from gateway.deadletter import DeadLetters
from gateway.spool import Spool
from gateway.uplink import Uplink
from gateway.writer import TelemetryWriter
from rules.ruleset import Rule
from rules.service import RulesService

log = logging.getLogger(__name__)

# The uplink's first pause before a retry, doubled up to the second: a centre back from an outage
# gets the backlog within seconds (a telemetry store's pauses go up to 30 s).
UPLINK_RETRY_S = (0.5, 2.0)
OPS_START_WAIT_S = 5.0  # at start, how long to wait for the ops store before going on without it


async def start_ops_store(site: Site, data_dir: Path | None, stack: AsyncExitStack, readiness: Readiness) -> OpsStore:
    """The ops store, closed by `stack`. Waited for at most OPS_START_WAIT_S: a store that is down
    delays recording, never raising, an alarm, so the service starts without it."""
    ops = OpsStore(
        ops_url(site, data_dir),
        site=site.site.id,
        site_name=site.site.name,
        desk_url=site.site.desk_url,
        dead_letters=DeadLetterLimits.of(site.stores),
    )
    await ops.start(wait=False)
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
    return ops


def telemetry_writer(
    site: Site, data_dir: Path | None, stack: AsyncExitStack, dead_letters: DeadLetters
) -> tuple[TelemetryWriter, TelemetryStore]:
    """The telemetry store of the site (or of the data dir), closed by `stack`, and a writer in
    front of it that spools to disk while the store is down."""
    stores = site.stores
    base = data_dir or site.path(".")
    if data_dir is not None:
        local = {"telemetry": "telemetry.db"} if isinstance(stores.telemetry, str) else {}
        stores = stores.model_copy(update={"spool": "spool", **local})
    telemetry = open_telemetry(stores, base, site.site.id)
    stack.callback(telemetry.close)
    spool = Spool(local_dir(site, data_dir, "spool"), limit_bytes=stores.spool_limit_mb * 1_000_000)
    batch_size = stores.telemetry.batch_size if isinstance(stores.telemetry, InfluxStore) else 5000
    return TelemetryWriter(telemetry, spool, dead_letter=dead_letters.put, batch_size=batch_size), telemetry


def uplink_writer(
    site: Site, data_dir: Path | None, stack: AsyncExitStack, dead_letters: DeadLetters, client_id: str
) -> tuple[TelemetryWriter, Uplink]:
    """The writer of an estate's gateway whose writers run at the centre: readings go up the
    uplink (the site's `uplink:` broker, else its `broker:`), through the spool while it is cut."""
    uplink = Uplink(site.uplink or site.broker, site.site.id, client_id)
    uplink.start()
    stack.callback(uplink.close)
    spool = Spool(local_dir(site, data_dir, "spool"), limit_bytes=site.stores.spool_limit_mb * 1_000_000)
    writer = TelemetryWriter(
        uplink, spool, dead_letter=dead_letters.put, retry_first_s=UPLINK_RETRY_S[0], retry_max_s=UPLINK_RETRY_S[1]
    )
    return writer, uplink


def rule_points(rules: Iterable[Rule]) -> frozenset[tuple[str, str]]:
    """The (device, point) pairs the rules read: the spool keeps those readings in its alarm lane."""
    return frozenset((d, p) for rule in rules for d in rule.devices for p in rule.reads)


def constant(points: frozenset[tuple[str, str]]) -> Callable[[], frozenset[tuple[str, str]]]:
    """The judged points of rules that run in another process: read from the files at start."""
    return lambda: points


def judged_points(rules: RulesService) -> Callable[[], frozenset[tuple[str, str]]]:
    """The (device, point) pairs the running rules read, worked out again after a reload."""
    last: list[object] = [None, frozenset()]

    def points() -> frozenset[tuple[str, str]]:
        if rules.rules is not last[0]:
            last[:] = [rules.rules, rule_points(rules.rules)]
        judged = last[1]
        assert isinstance(judged, frozenset)
        return judged

    return points
