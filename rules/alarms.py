"""Turns condition changes into alarms in the ops store, and carries out operator actions.

Changes are queued without bound and written in order by one task, so the engine never waits on
the database and no change is dropped. Every stored change is announced on the bus.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from facility.bus import Bus
from facility.model import now_ns
from facility.site import Site
from facility.store.ops import NewAlarm, OpsStore
from rules.engine import Change
from rules.ruleset import render

log = logging.getLogger(__name__)

RETRY_MAX_S = 10.0  # longest wait between attempts to record a change while the store is down


class AlarmService:
    def __init__(self, site: Site, store: OpsStore, bus: Bus) -> None:
        self._site = site
        self._store = store
        self._bus = bus
        self._changes: asyncio.Queue[Change] = asyncio.Queue()

    def condition_changed(self, change: Change) -> None:
        self._changes.put_nowait(change)

    async def run(self) -> None:
        while True:
            change = await self._changes.get()
            failures = 0
            while True:  # retry this change until it is stored: later ones must not overtake it
                try:
                    await self._apply(change)
                    break
                except Exception:
                    if failures == 0:
                        log.exception(
                            "cannot record alarm change for %s on %s; retrying", change.rule.id, change.device
                        )
                    failures += 1
                    await asyncio.sleep(min(RETRY_MAX_S, 0.5 * 2**failures))
            if failures:
                log.warning(
                    "alarm change for %s on %s recorded after %d retries", change.rule.id, change.device, failures
                )

    async def drain(self) -> None:
        """Apply every queued change (used at shutdown)."""
        while not self._changes.empty():
            await self._apply(self._changes.get_nowait())

    async def _apply(self, change: Change) -> None:
        if change.active:
            alarm, changed = await self._store.raise_alarm(self._new_alarm(change))
            if not changed:
                return
        else:
            found = await self._store.return_to_normal(change.rule.id, change.device, change.ts)
            if found is None:
                return
            alarm = found
        self._announce(alarm)

    async def acknowledge(self, alarm_id: int, user: str, source: str) -> dict[str, Any] | None:
        alarm = await self._store.acknowledge(alarm_id, user, source, now_ns())
        if alarm is not None:
            self._announce(alarm)
        return alarm

    def _announce(self, alarm: dict[str, Any]) -> None:
        self._bus.publish_event("alarm", alarm)

    def _new_alarm(self, change: Change) -> NewAlarm:
        spec = change.rule.spec
        device = self._site.device(change.device)
        values = {
            "device": device.id,
            "device_name": device.name or device.id,
            "building": device.location.building,
            "location_floor": device.location.floor,
            "room": device.location.room,
            **change.values,  # point names win over location names
        }
        return NewAlarm(
            rule_id=spec.id,
            device_id=device.id,
            priority=spec.priority.value,
            title_zh=render(spec.title.zh, values),
            title_en=render(spec.title.en, values),
            message_zh=render(spec.message.zh, values) if spec.message else "",
            message_en=render(spec.message.en, values) if spec.message else "",
            ts=change.ts,
        )
