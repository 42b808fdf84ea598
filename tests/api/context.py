"""An API context with no plant behind it: the rules and stores, but no gateway to write through
and no telemetry to read. For tests of routes that need neither; a call to either fails the test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from api.context import ApiContext
from facility.bus import LocalBus
from facility.readiness import Readiness
from facility.site import Site
from facility.store.live import LiveValues
from facility.store.ops import OpsStore
from rules.service import RulesService


async def never_write(device: str, point: str, value: object, *, actor: str, source: str) -> Any:
    raise AssertionError(f"this test never writes a point ({device} {point})")


def never_read(*_: object) -> list[Any]:
    raise AssertionError("this test never reads telemetry")


def without_plant(site: Site, ops: OpsStore, journal: Path, readiness: Readiness | None = None) -> ApiContext:
    """The context of `site` on `ops`, its rule outcomes journaled in `journal`."""
    bus = LocalBus()
    return ApiContext(
        site=site,
        bus=bus,
        live=LiveValues(),
        ops=ops,
        rules=RulesService(site, bus, ops, journal).lifecycle,
        write=never_write,
        history=never_read,
        readiness=readiness or Readiness(),
    )
