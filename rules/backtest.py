"""Backtests: replay stored history through a rule set to see what it would have raised.

Before a changed threshold or `for` goes live, an engineer sees against last week's data how
many alarms and tasks it would have produced, when, and for how long.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from facility.duration import parse_duration
from facility.model import Quality, Reading
from facility.store.telemetry import TelemetryStore
from rules.engine import Change, Engine
from rules.ruleset import Rule

S = 1_000_000_000
WINDOW_NS = 3600 * S  # history is read an hour at a time, so a long replay never holds it all
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def span(seconds: float) -> str:
    """A duration the way rule files write it: 90 -> 1m30s, 86400 -> 1d, 0.5 -> 500ms."""
    if 0 < seconds < 1:
        return f"{seconds * 1000:g}ms"
    parts, rest = [], int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    secs = rest + seconds - int(seconds)
    if secs or not parts:
        parts.append(f"{secs:g}s")
    return "".join(parts)


def parse_time(text: str, zone: ZoneInfo, now_ns: int) -> int:
    """UTC ns of `text`: ISO 8601 (in `zone` unless it names an offset), `now`, or `-7d`, `now-2h`."""
    relative = text.strip().removeprefix("now")
    if not relative:
        return now_ns
    if relative.startswith("-"):
        return now_ns - int(parse_duration(relative[1:]) * S)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: write ISO 8601 (2025-03-01, 2025-03-01T08:00, ...+08:00) or -7d, -2h, now"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


@dataclass
class Episode:
    """One time a rule's condition was active on a device; `cleared` None: still active at the end."""

    rule: Rule
    device: str
    raised: int
    cleared: int | None = None


def read_points(rules: Sequence[Rule]) -> list[tuple[str, str]]:
    """The (device, point) pairs the rules' conditions read."""
    return sorted({(device, point) for rule in rules for device in rule.devices for point in rule.reads})


def backtest(
    rules: Sequence[Rule],
    store: TelemetryStore,
    start_ns: int,
    end_ns: int,
    step_ns: int,
    advance: Callable[[], None] = lambda: None,
) -> list[Episode]:
    """Feed raw history in [start, end) to an engine in time order and collect what it raised.

    The engine ticks every `step` and at each reading's time, so a `for` that elapses between
    readings raises within a step of when the live engine would. `advance` is called once per
    point read per hour of history, for a progress bar (see `reads_count`).
    """
    episodes: list[Episode] = []
    open_: dict[tuple[str, str], Episode] = {}

    def changed(change: Change) -> None:
        key = (change.rule.id, change.device)
        if change.active and key not in open_:  # a change of suppression keeps the episode open
            open_[key] = Episode(change.rule, change.device, change.ts)
            episodes.append(open_[key])
        elif not change.active and key in open_:
            open_.pop(key).cleared = change.ts

    engine = Engine(rules, changed)
    next_tick = start_ns
    batch: list[Reading] = []
    for reading in _history(rules, store, start_ns, end_ns, advance):
        if batch and reading.ts != batch[0].ts:
            engine.handle(batch)
            batch = []
        if not batch:
            while next_tick < reading.ts:
                engine.tick(next_tick)
                next_tick += step_ns
            engine.tick(reading.ts)
        batch.append(reading)
    if batch:
        engine.handle(batch)
    while next_tick < end_ns:
        engine.tick(next_tick)
        next_tick += step_ns
    return episodes


def reads_count(rules: Sequence[Rule], start_ns: int, end_ns: int) -> int:
    """How many times `backtest` calls `advance`."""
    return len(read_points(rules)) * len(range(start_ns, end_ns, WINDOW_NS))


def _history(
    rules: Sequence[Rule], store: TelemetryStore, start_ns: int, end_ns: int, advance: Callable[[], None]
) -> Iterator[Reading]:
    """Every stored reading the rules read, in time order; at one time, one device's together.
    The store keeps only good values, so a gap holds the last value rather than turning unknown."""
    pairs = read_points(rules)
    for lo in range(start_ns, end_ns, WINDOW_NS):
        hi = min(lo + WINDOW_NS, end_ns)
        series = []
        for device, point in pairs:
            series.append(
                [Reading(device, point, s.mean, Quality.GOOD, s.ts) for s in store.history(device, point, lo, hi)]
            )
            advance()
        yield from heapq.merge(*series, key=lambda r: r.ts)  # stable: ties stay in (device, point) order


def report(episodes: Sequence[Episode], rules: Sequence[Rule], start_ns: int, end_ns: int, zone: ZoneInfo) -> str:
    """What would have fired, as a table in the site's time zone, then a count per rule."""

    def local(ts: int) -> str:
        return datetime.fromtimestamp(ts / S, zone).strftime("%Y-%m-%d %H:%M:%S")

    lines = [f"{len(rules)} rules replayed from {local(start_ns)} to {local(end_ns)} ({zone.key})"]
    rows = [
        (
            e.rule.id,
            e.device,
            local(e.raised),
            local(e.cleared) if e.cleared is not None else "still active",
            span(((e.cleared if e.cleared is not None else end_ns) - e.raised) / S),
        )
        for e in sorted(episodes, key=lambda e: (e.raised, e.rule.id, e.device))
    ]
    if rows:
        rows.insert(0, ("rule", "device", "raised", "cleared", "duration"))
        widths = [max(len(row[i]) for row in rows) for i in range(4)] + [0]
        lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    else:
        lines.append("nothing would have fired")
    counts = Counter(e.rule.id for e in episodes)
    width = max(len(r.id) for r in rules) if rules else 0
    lines.append("fired per rule:")
    lines += [f"  {r.id:<{width}}  {counts[r.id]}" for r in sorted(rules, key=lambda r: (-counts[r.id], r.id))]
    return "\n".join(lines)
