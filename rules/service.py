"""Wires rule files, engine and alarm service for one site."""

from __future__ import annotations

import asyncio
import logging

from facility.aio import cancel_all
from facility.bus import Bus
from facility.model import now_ns
from facility.site import Site
from facility.store.ops import OpsStore
from rules.alarms import AlarmService
from rules.engine import Engine
from rules.ruleset import load_rules

log = logging.getLogger(__name__)

TICK_S = 0.1  # how often pending `for` durations are checked without new readings


class RulesService:
    def __init__(self, site: Site, bus: Bus, store: OpsStore) -> None:
        self.rules = load_rules(site)
        self.alarms = AlarmService(site, store, bus)
        self.engine = Engine(self.rules, self.alarms.condition_changed)
        self._store = store
        self._bus = bus
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self.engine.restore(await self._store.active_conditions())
        self._bus.on_readings(self.engine.handle)
        self._tasks = [
            asyncio.create_task(self.alarms.run(), name="alarms"),
            asyncio.create_task(self._tick(), name="rule ticks"),
        ]
        log.info("rules: %d loaded", len(self.rules))

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            self.engine.tick(now_ns())

    async def stop(self) -> None:
        await cancel_all(self._tasks)
        await self.alarms.drain()
