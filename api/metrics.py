"""`GET /metrics`: every part's figures for Prometheus, read from the `Readiness` at scrape time.

Nothing is counted here: the parts keep plain integers and the collector turns what they say at
the moment of the scrape into metric families (prefix `facility_`, one family per figure name),
so the hot path pays nothing for being watched. The collector runs on the event loop, where the
parts' state lives, so a reporter needs no lock. Each part's readiness is given too:

- `facility_part_up{part,kind}`: 1 while the part does its job (up or degraded), 0 when down;
- `facility_part_degraded{part,kind}`: 1 while it is degraded;
- `facility_part_last_success_timestamp_seconds{part,kind}`: its last success, for "stale" alerts.

Every app has a registry of its own (never prometheus_client's global one), so that several apps
in one process, as in the tests, do not clash. The route needs a token like every route but the
health ones; docs/operations.md shows how Prometheus sends it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from fastapi import APIRouter, Request, Response
from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from api.deps import Viewer
from api.health import unsecret
from api.schemas import ERRORS
from facility.readiness import Readiness, State

log = logging.getLogger(__name__)

PREFIX = "facility_"


class ReadinessCollector(Collector):
    """The figures and part states of a `Readiness`, as Prometheus metric families."""

    def __init__(self, readiness: Readiness) -> None:
        self._readiness = readiness
        self._warned: set[str] = set()

    def collect(self) -> Iterable[Metric]:
        families: dict[str, Metric] = {}
        for figure in self._readiness.figures():
            name = PREFIX + figure.name.removesuffix("_total")
            family = families.get(name)
            if family is None:
                family = families[name] = Metric(name, figure.help, figure.kind)
            elif family.type != figure.kind:
                self._warn_once(name, f"figure {figure.name} is both a {family.type} and a {figure.kind}")
                continue
            sample = f"{name}_total" if figure.kind == "counter" else name
            family.add_sample(sample, dict(figure.labels), float(figure.value))
        yield from families.values()
        yield from self._parts()

    def _parts(self) -> Iterable[Metric]:
        up = Metric(f"{PREFIX}part_up", "1 while the part does its job (up or degraded), 0 while it is down.", "gauge")
        degraded = Metric(
            f"{PREFIX}part_degraded", "1 while the part is degraded (doing its job, but not well).", "gauge"
        )
        last = Metric(
            f"{PREFIX}part_last_success_timestamp_seconds",
            "When the part last succeeded (a write taken, a poll answered), as a Unix time.",
            "gauge",
        )
        for part in self._readiness.parts():
            labels = {"part": unsecret(part.name), "kind": part.kind}
            up.add_sample(up.name, labels, 0.0 if part.state is State.DOWN else 1.0)
            degraded.add_sample(degraded.name, labels, 1.0 if part.state is State.DEGRADED else 0.0)
            if part.last_success_ns is not None:
                last.add_sample(last.name, labels, part.last_success_ns / 1e9)
        return [up, degraded, last]

    def _warn_once(self, name: str, message: str) -> None:
        """A reporter's mistake is logged once and its conflicting samples left out, rather than the
        scrape failing and every other figure going dark with it."""
        if name not in self._warned:
            self._warned.add(name)
            log.warning("/metrics: %s; its later samples are left out", message)


def registry_of(readiness: Readiness) -> CollectorRegistry:
    """The registry of one app's /metrics: its own, never prometheus_client's global one."""
    registry = CollectorRegistry(auto_describe=False)  # describe() unasked: reporters are read at scrape time only
    registry.register(ReadinessCollector(readiness))
    ProcessCollector(registry=registry)  # process_start_time_seconds tells a restart; memory, CPU, open files
    return registry


router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        **{code: ERRORS[code] for code in (401, 403)},
        200: {"content": {"text/plain": {}}, "description": "the Prometheus text format"},
    },
)
async def metrics(request: Request, _: Viewer) -> Response:
    """Every part's figures and readiness in the Prometheus text format (or OpenMetrics, if the
    scraper asks for it); any user's token, viewer and up. See docs/operations.md."""
    encode, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encode(request.app.state.metrics), media_type=content_type)
