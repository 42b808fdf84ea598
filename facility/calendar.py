"""Calendar arithmetic of schedules: on which local days, and at what UTC times, a schedule that
runs every day, week or month falls.

It is the kernel's because two parts need the same answer: the rule engine's scheduler opens the
tasks when they fall due, and the morning briefing lists the rounds planned for the day; if each
computed it, a briefing could plan a round the scheduler does not open.
"""

from __future__ import annotations

from calendar import monthrange
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

NS = 1_000_000_000
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Calendar(Protocol):
    """When a calendar schedule falls: `every` day, week (on `weekday`) or month (on `day`, past a
    short month's end its last day), at `clock` local time."""

    @property
    def every(self) -> str | None: ...
    @property
    def weekday(self) -> str | None: ...
    @property
    def day(self) -> int | None: ...
    @property
    def clock(self) -> time: ...


def falls_on(when: Calendar, day: date) -> bool:
    """Whether the schedule falls on the local calendar `day`."""
    if when.every == "week":
        return day.weekday() == WEEKDAYS.index(when.weekday or "mon")
    if when.every == "month":
        return day.day == min(when.day or 1, monthrange(day.year, day.month)[1])
    return True


def occurrences_before(when: Calendar, zone: ZoneInfo, until_ns: int) -> Iterator[int]:
    """Calendar occurrences at or before `until_ns`, newest first, as UTC ns."""
    day = datetime.fromtimestamp(until_ns / NS, zone).date() + timedelta(days=1)  # +1: a zone change near midnight
    while True:
        if falls_on(when, day):
            ts = int(datetime.combine(day, when.clock, zone).timestamp()) * NS
            if ts <= until_ns:
                yield ts
        day -= timedelta(days=1)
