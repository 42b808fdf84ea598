"""Device health: a push (MQTT) device that goes quiet has its values marked stale.

MQTT devices say online/offline on their status topics; this catches the rest: a device whose
values stop arriving without anyone saying so. Its points are published once as stale (rules
treat them as unknown; the desk greys them) until it is heard from again.

Polled (Modbus) devices are not judged here: their poller is the authority. It asks each device
and either hears an answer (fresh values) or publishes the device's points as no communication
itself. Time in which the gateway did not ask a device — its bus held by writes, a demoted
device's backoff, a poll interval of 0 s ("as fast as the bus allows", which would make a limit of
3 x 0 s) — says nothing about the device, so it must not make its values stale.

Silence is counted in the event loop's own time: when a check wakes later than planned, the loop
was busy and readings may have waited unread in the socket, so the overshoot is not counted
against the devices.
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
    def __init__(
        self, site: Site, publish: Callable[[list[Reading]], None], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._publish = publish
        self._clock = clock
        # A push device with an interval of 0 promises no rhythm: its silence cannot be judged.
        watched = [d for d in site.devices if d.mqtt is not None and d.interval > 0]
        self._limit = {d.id: STALE_AFTER_INTERVALS * d.interval for d in watched}
        self._points = {d.id: list(site.profile_of(d).points) for d in watched}
        # device -> loop time of its last fresh value. Polled devices land here too: skipping them
        # would cost the hot path a lookup per reading, and check() never looks at them.
        self.last_seen: dict[str, float] = {}
        self.stale: set[str] = set()
        self._checked = clock()  # clock time of the last check (or of the start)
        self._late = 0.0  # how much later than planned the checks have woken, in all

    def _loop_time(self) -> float:
        return min(self._clock(), self._checked + CHECK_S) - self._late

    def seen(self, readings: Sequence[Reading]) -> None:
        """Bus handler: note who was heard from (cheap: one dict write per reading).

        Loop time is the clock less the lateness found so far. A batch handled after the next check
        was due, but before that check ran, is late by the overshoot the check has yet to find:
        it is dated at the moment the check was due, so that its silence afterwards is counted
        from there, in loop time.
        """
        now = self._loop_time()
        last_seen = self.last_seen
        for r in readings:
            if r.quality is Quality.GOOD or r.quality is Quality.BAD:
                last_seen[r.device] = now
        if self.stale:
            self.stale.difference_update(r.device for r in readings if r.quality is Quality.GOOD)

    def status(self, device: str, online: bool) -> None:
        """A device's own word on its status topic. Offline: its points are no communication
        already, so its silence is not judged (stale would hide that). Online: its values are due
        from now, so its silence is counted from now, not from before it went away."""
        if online:
            self.last_seen[device] = self._loop_time()
            self.stale.discard(device)
        else:
            self.last_seen.pop(device, None)

    def check(self, now: float) -> None:
        """Mark stale each watched device silent for longer than 3 of its intervals of loop time;
        `now` is the clock's time. A device never heard from is not judged."""
        self._late += max(0.0, now - self._checked - CHECK_S)
        self._checked = now
        loop_now = now - self._late
        ts = time.time_ns()
        for device, limit in self._limit.items():
            last = self.last_seen.get(device)
            if last is not None and device not in self.stale and loop_now - last > limit:
                self.stale.add(device)
                self._publish([Reading(device, p, None, Quality.STALE, ts) for p in self._points[device]])

    async def run(self) -> None:
        while True:
            await asyncio.sleep(CHECK_S)
            self.check(self._clock())
