"""Periods in the site's time zone (a day, a month, a shift) as UTC ns: a local day is 23 or 25 hours
on the days clocks change, so every boundary is computed from local calendar times."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

NS = 1_000_000_000
SHIFT_STARTS = (time(8, 0), time(20, 0))  # the day and the night shift, local time
BRIEFING_AT = time(8, 0)  # the morning meeting, local time: the day shift's start


def local_ns(day: date, at: time, zone: ZoneInfo) -> int:
    return int(datetime.combine(day, at, zone).timestamp()) * NS


def day_bounds(day: date, zone: ZoneInfo) -> tuple[int, int]:
    """[start, end) of a local calendar day."""
    return local_ns(day, time(), zone), local_ns(day + timedelta(days=1), time(), zone)


def month_bounds(year: int, month: int, zone: ZoneInfo) -> tuple[int, int]:
    """[start, end) of a local calendar month; ValueError for a month that does not exist."""
    first = date(year, month, 1)
    following = date(year + month // 12, month % 12 + 1, 1)
    return local_ns(first, time(), zone), local_ns(following, time(), zone)


def local_date(ts: int, zone: ZoneInfo) -> date:
    return datetime.fromtimestamp(ts / NS, zone).date()


def shift_start(now: int, zone: ZoneInfo) -> int:
    """When the shift under way at `now` began: the latest 08:00 or 20:00 local at or before it."""
    today = local_date(now, zone)
    starts = [local_ns(today - timedelta(days=back), at, zone) for back in (0, 1) for at in SHIFT_STARTS]
    return max(ts for ts in starts if ts <= now)


def since_last_briefing(now: int, zone: ZoneInfo) -> int:
    """When the default briefing begins: yesterday's morning meeting (BRIEFING_AT local on the day
    before `now`'s local day), so that the briefing read this morning holds all of last night."""
    return local_ns(local_date(now, zone) - timedelta(days=1), BRIEFING_AT, zone)
