"""Device health: a device that goes quiet has its values marked stale.

Modbus devices report online/offline from their polls and MQTT devices from their status topics;
this catches the rest: a device whose values stop arriving without anyone saying so. Its points
are published once as stale (rules treat them as unknown; the desk greys them) until it is heard
from again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from facility.model import Quality, Reading
from facility.site import Site

STALE_AFTER_INTERVALS = 3
CHECK_S = 1.0


class Health:
    def __init__(self, site: Site, publish: Callable[[list[Reading]], None]) -> None:
        self._publish = publish
        self._limit = {d.id: STALE_AFTER_INTERVALS * d.interval for d in site.devices}
        self._points = {d.id: list(site.profile_of(d).points) for d in site.devices}
        self.last_seen: dict[str, float] = {}  # device -> monotonic time of its last fresh value
        self.stale: set[str] = set()

    def seen(self, readings: Sequence[Reading]) -> None:
        """Bus handler: note who was heard from (cheap: one dict write per reading)."""
        now = time.monotonic()
        last_seen = self.last_seen
        for r in readings:
            if r.quality is Quality.GOOD or r.quality is Quality.BAD:
                last_seen[r.device] = now
        if self.stale:
            self.stale.difference_update(r.device for r in readings if r.quality is Quality.GOOD)

    def check(self, now: float) -> None:
        ts = time.time_ns()
        for device, last in self.last_seen.items():
            if device not in self.stale and now - last > self._limit[device]:
                self.stale.add(device)
                self._publish([Reading(device, p, None, Quality.STALE, ts) for p in self._points[device]])

    async def run(self) -> None:
        while True:
            await asyncio.sleep(CHECK_S)
            self.check(time.monotonic())
