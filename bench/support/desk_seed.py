"""The estate bench/desk.py fills its stores with, kept apart from what it measures: alarms over
90 days (most closed, the open ones in every state duty staff see), their heavy-tailed history,
and a day of one trend point, written in bulk as the migrations made the schema.

Seeded by the caller's `random.Random`, so that every run measures the same rows.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, insert

from facility.model import Quality, Reading
from facility.store.ops import OpsStore
from facility.store.sqlite_telemetry import SqliteTelemetry
from facility.store.tables import AlarmHistoryRow, AlarmRow

S = 1_000_000_000
HOUR, DAY = 3600 * S, 86_400 * S
BUILDINGS = 8
USERS = ("ana", "li", "wang", "zhou")
TREND = ("pump-b1-1", "outlet_pressure")
INSERT_BATCH = 50_000

# Per building: (profile, id prefix, how many, [(rule, priority, how often it fires relative to others)]).
PLANT: list[tuple[str, str, int, list[tuple[str, str, int]]]] = [
    (
        "booster_pump",
        "pump",
        2,
        [
            ("booster-pump-low-pressure", "high", 3),
            ("booster-pump-tripped", "high", 2),
            ("booster-pump-dry-run", "high", 1),
            ("booster-pump-vibration", "medium", 4),
            ("booster-pump-motor-hot", "high", 1),
        ],
    ),
    (
        "sump_pit",
        "sump",
        1,
        [
            ("sump-high-level", "emergency", 1),
            ("sump-rising-fast", "high", 2),
            ("sump-pump-fault", "high", 2),
            ("sump-pump-short-cycling", "low", 5),
        ],
    ),
    (
        "elevator",
        "lift",
        2,
        [
            ("elevator-entrapment", "emergency", 1),
            ("elevator-door-fault", "high", 3),
            ("elevator-repeated-door-faults", "medium", 3),
            ("elevator-out-of-service", "medium", 2),
        ],
    ),
    (
        "fire_panel",
        "fire",
        1,
        [("fire-alarm", "emergency", 1), ("fire-panel-fault", "high", 3), ("fire-panel-power", "high", 1)],
    ),
    (
        "power_meter",
        "power",
        1,
        [
            ("mains-failure", "emergency", 1),
            ("generator-did-not-take-over", "emergency", 1),
            ("phase-voltage-out-of-range", "high", 3),
        ],
    ),
    ("water_tank", "tank", 1, [("water-tank-low", "high", 2), ("water-tank-overflow", "medium", 2)]),
    ("lighting_panel", "light", 1, [("lighting-lamp-failure", "low", 6), ("lighting-on-in-daylight", "low", 4)]),
    (
        "access_door",
        "door",
        2,
        [("door-forced-open", "high", 2), ("door-held-open", "medium", 8), ("door-repeated-forcing", "medium", 1)],
    ),
]
OFFLINE = ("device-offline", "high", 3)
# How the open alarms divide over the states duty staff see (shares of the open count).
OPEN_MIX = {"unacknowledged": 0.3, "acknowledged": 0.4, "rtn_unacknowledged": 0.17, "shelved": 0.08, "suppressed": 0.05}


def devices() -> list[tuple[str, str, str, list[tuple[str, str, int]]]]:
    """(id, profile, building, its rules) of every device of the estate."""
    out = []
    for b in range(1, BUILDINGS + 1):
        for profile, prefix, count, rules in PLANT:
            out += [(f"{prefix}-b{b}-{k}", profile, f"B{b}", [*rules, OFFLINE]) for k in range(1, count + 1)]
    return out


def alarm_rows(rng: random.Random, count: int, open_count: int, now: int) -> list[dict[str, Any]]:
    """`count` alarms over 90 days, ids in the order raised: `open_count` open ones, one per
    (rule, device), in the mix of OPEN_MIX; the rest closed."""
    pairs = [(rule, prio, weight, device) for device, _, _, rules in devices() for rule, prio, weight in rules]
    if open_count > len(pairs):
        raise SystemExit(f"--open: at most {len(pairs)} (one open alarm per rule and device)")
    states = [s for s, share in OPEN_MIX.items() for _ in range(round(share * open_count))]
    states = (states + ["acknowledged"] * open_count)[:open_count]
    rows = []
    for (rule, prio, _, device), state in zip(rng.sample(pairs, open_count), states, strict=True):
        raised = now - int(rng.expovariate(1 / (2 * DAY))) - HOUR  # most open ones are recent
        rows.append(alarm(rng, rule, prio, device, raised, now, state))
    weights = [w for _, _, w, _ in pairs]
    for rule, prio, _, device in rng.choices(pairs, weights, k=count - open_count):
        raised = now - rng.randrange(HOUR, 90 * DAY)
        rows.append(alarm(rng, rule, prio, device, raised, now, "normal"))
    rows.sort(key=lambda r: r["raised_at"])
    for i, row in enumerate(rows, 1):
        row["id"] = i
    return rows


def alarm(rng: random.Random, rule: str, prio: str, device: str, raised: int, now: int, state: str) -> dict[str, Any]:
    """One alarm row in `state` (an AlarmState value, or `shelved`/`suppressed` open ones)."""
    active = state in ("unacknowledged", "acknowledged", "suppressed") or (state == "shelved" and rng.random() < 0.5)
    acked = state in ("normal", "acknowledged") or (state == "shelved" and rng.random() < 0.5)
    cleared = None if active else min(now - HOUR // 2, raised + rng.randrange(S, 6 * HOUR))
    acked_at = min(now - HOUR // 2, raised + rng.randrange(10 * S, HOUR)) if acked else None
    changed = max(t for t in (raised, cleared, acked_at) if t is not None)
    shelved = state == "shelved"
    return {
        "rule_id": rule,
        "device_id": device,
        "priority": prio,
        "title_zh": f"{device} {rule}",
        "title_en": f"{device}: {rule.replace('-', ' ')}",
        "message_zh": "",
        "message_en": "",
        "active": active,
        "acknowledged": acked,
        "is_open": state != "normal",
        "raised_at": raised,
        "changed_at": changed,
        "acked_at": acked_at,
        "acked_by": rng.choice(USERS) if acked else None,
        "cleared_at": cleared,
        "activated_at": raised,
        "shelved": shelved,
        "shelved_until": now + rng.randrange(HOUR, 20 * HOUR) if shelved else None,
        "shelved_by": rng.choice(USERS) if shelved else None,
        "shelve_reason": "sensor being replaced" if shelved else None,
        "suppressed": state == "suppressed",
        "out_of_service": False,
        "chattering": False,
        # Left unacknowledged for hours, the emergency and high ones have been escalated long ago.
        "escalated": not acked and not shelved and state != "suppressed" and prio in ("emergency", "high"),
    }


def history_counts(rng: random.Random, alarms: int, rows: int) -> list[int]:
    """History rows per alarm summing to `rows`: a few each, and a heavy tail of chattering ones."""
    base = min(3, rows // alarms)
    weights = [rng.paretovariate(1.5) for _ in range(alarms)]
    spare, total = rows - base * alarms, sum(weights)
    counts = [base + int(spare * w / total) for w in weights]
    for i in range(rows - sum(counts)):  # what rounding down left over
        counts[i % alarms] += 1
    return counts


def history_rows(rng: random.Random, alarms: list[dict[str, Any]], counts: list[int]) -> Iterator[dict[str, Any]]:
    """Each alarm's history, oldest first: raised, then returns and recurrences with a comment now
    and then, ending as its state says (acknowledged, returned to normal, shelved)."""
    for row, count in zip(alarms, counts, strict=True):
        tail = [a for a, on in (("acknowledged", row["acknowledged"]), ("shelved", row["shelved"])) if on]
        if not row["active"]:
            tail.append("returned to normal")
        tail = tail[: max(0, count - 1)]
        middle = count - 1 - len(tail)
        actions = ["raised"]
        actions += ["comment" if i % 25 == 24 else ("returned to normal", "raised again")[i % 2] for i in range(middle)]
        actions += tail
        start, step = row["raised_at"], max(1, (row["changed_at"] - row["raised_at"]) // max(1, count))
        for i, action in enumerate(actions):
            by_user = action in ("acknowledged", "shelved", "comment")
            yield {
                "alarm_id": row["id"],
                "ts": start + i * step,
                "action": action,
                "actor": rng.choice(USERS) if by_user else "rules",
                "source": "10.0.0.12" if by_user else "",
                "detail": "checked on site, pressure back" if action == "comment" else "",
            }


async def fill_ops(path: Path, site: str, alarms: list[dict[str, Any]], history: Iterator[dict[str, Any]]) -> int:
    """Bulk-insert the alarms and their history (executemany in batches) of the estate `site` into
    a database made by the migrations, as the service makes it; returns history rows."""
    store = OpsStore(f"sqlite+aiosqlite:///{path}", site=site)
    await store.upgrade()
    await store.close()
    return await asyncio.to_thread(_insert, path, site, alarms, history)


def _insert(path: Path, site: str, alarms: list[dict[str, Any]], history: Iterator[dict[str, Any]]) -> int:
    """fill_ops's writing, in a thread of its own: synchronous executemany is the fastest bulk
    insert, and batches of INSERT_BATCH keep a million history rows out of memory at once."""
    engine = create_engine(f"sqlite:///{path}")
    written = 0
    with engine.begin() as conn:
        conn.execute(insert(AlarmRow), [alarm | {"site": site} for alarm in alarms])
        batch: list[dict[str, Any]] = []
        for row in history:
            batch.append(row | {"site": site})
            if len(batch) == INSERT_BATCH:
                conn.execute(insert(AlarmHistoryRow), batch)
                written, batch = written + len(batch), []
        if batch:
            conn.execute(insert(AlarmHistoryRow), batch)
            written += len(batch)
    engine.dispose()
    return written


def fill_telemetry(path: Path, start: int) -> int:
    """A day of the trend point at 1 s: a daily pressure swing with noise."""
    rng = random.Random(2)
    device, point = TREND
    readings = [
        Reading(device, point, round(0.45 + 0.05 * math.sin(i / 86_400 * 2 * math.pi) + rng.gauss(0, 0.005), 4),
                Quality.GOOD, start + i * S)
        for i in range(86_400)
    ]  # fmt: skip
    store = SqliteTelemetry(path)
    try:
        for i in range(0, len(readings), 5000):
            store.write(readings[i : i + 5000])
    finally:
        store.close()
    return len(readings)
