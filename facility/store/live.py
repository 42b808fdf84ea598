"""The latest reading of every point, in memory, for the desk's live view."""

from __future__ import annotations

from collections.abc import Sequence

from facility.model import DeviceStatus, Quality, Reading

STALE_AFTER_INTERVALS = 3  # a value older than this many expected intervals is shown as stale
SHORTEST_INTERVAL_S = 1.0  # ... counted as at least this: a device polled as fast as it goes (0 s) is not always stale
_KEEPS_LAST_VALUE = (Quality.STALE, Quality.NO_COMM)


class LiveValues:
    def __init__(self) -> None:
        self._latest: dict[str, dict[str, Reading]] = {}
        self._seen: dict[str, int] = {}  # device -> time of its newest fresh value
        self._said: dict[str, bool] = {}  # device -> its own last word on its status

    def update(self, readings: Sequence[Reading]) -> None:
        """Keep each point's latest reading. A stale or no-communication mark without a value keeps
        the last value and its time, so the desk shows what was last known, marked as such."""
        latest = self._latest
        for reading in readings:
            points = latest.get(reading.device)
            if points is None:
                points = latest[reading.device] = {}
            if reading.value is None and reading.quality in _KEEPS_LAST_VALUE:
                previous = points.get(reading.point)
                if previous is not None:
                    # A device that stopped answering also goes quiet: "stale" must not hide it.
                    keeps_no_comm = previous.quality is Quality.NO_COMM
                    quality = Quality.NO_COMM if keeps_no_comm else reading.quality
                    reading = Reading(reading.device, reading.point, previous.value, quality, previous.ts)
            elif reading.quality not in _KEEPS_LAST_VALUE and reading.ts > self._seen.get(reading.device, 0):
                self._seen[reading.device] = reading.ts
            points[reading.point] = reading

    def device_status(self, status: DeviceStatus) -> None:
        """Bus status handler: a device that says it is online shows online at once; its points keep
        their last value and quality until it sends values (nothing has confirmed them since)."""
        self._said[status.device] = status.online

    def of(self, device: str) -> dict[str, Reading]:
        return dict(self._latest.get(device, {}))

    def status(self, device: str) -> tuple[bool | None, int | None]:
        """(online, last seen in UTC ns) of a device: online when its own last word on its status
        says so, else derived from its points (offline when every one is marked no-communication);
        last seen is its newest fresh value. None: never heard."""
        points = self._latest.get(device)
        if not points:
            return None, None
        online = self._said.get(device) is True or any(r.quality is not Quality.NO_COMM for r in points.values())
        return online, self._seen.get(device)


def shown_quality(reading: Reading, interval_s: float, now_ns: int) -> Quality:
    """The quality to show now: a good value that has not been refreshed in time is stale."""
    limit_s = STALE_AFTER_INTERVALS * max(interval_s, SHORTEST_INTERVAL_S)
    if reading.quality is Quality.GOOD and now_ns - reading.ts > limit_s * 1e9:
        return Quality.STALE
    return reading.quality
