"""Alarm queries of the reports: activations counted in SQL from the alarms' history, emergencies,
acknowledge times, chattering, the history as events, the open alarms and the outages of devices.

An activation is each time an alarm went active (raised, or raised again after returning to
normal), which is what reached duty staff. Suppressed-by-design activations are counted too: the
history does not tell them apart. Over a month of alarms only per-group results come back.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import ColumnElement, case, func, or_, select

from facility.model import Priority
from facility.store.reads.view import View
from facility.store.tables import AlarmHistoryRow, AlarmRow
from facility.vocabulary import ACTIVATIONS, AlarmAction, Text

WINDOW_NS = 600 * 1_000_000_000  # ISA-18.2 and EEMUA 191 judge alarm rates per 10 minutes
_ACTIVATIONS = sorted(ACTIVATIONS)
_PRIORITY_RANK = case({"emergency": 0, "high": 1, "medium": 2, "low": 3}, value=AlarmRow.priority, else_=4)


@dataclass(frozen=True)
class Frequent:
    """A (rule, device) pair and how often it went active."""

    rule: str
    device: str
    title: Text
    activations: int
    flagged: bool  # the store called it chattering at least once in the period


@dataclass(frozen=True)
class Emergency:
    """An emergency alarm that went active in a period: when first, how often, and where it is now."""

    alarm: int
    first: int
    times: int
    device: str
    title: Text
    acked_at: int | None
    acked_by: str | None
    cleared_at: int | None
    state: str


@dataclass(frozen=True)
class Acks:
    """Per priority: activations, those acknowledged, and the sum of their times to acknowledge."""

    activations: int
    acked: int
    total_ns: int


@dataclass(frozen=True)
class AlarmEvent:
    """An entry of an alarm's history with the alarm it is of."""

    ts: int
    alarm: int
    priority: str
    device: str
    title: Text
    message: Text
    action: str
    actor: str | None
    detail: str


@dataclass(frozen=True)
class OpenAlarm:
    """An alarm still open on the desk."""

    alarm: int
    priority: str
    state: str
    activated_at: int | None
    device: str
    title: Text
    acked_by: str | None


@dataclass(frozen=True)
class Outage:
    """A device cut off: an alarm of a communication rule from its activation to its return to normal."""

    device: str
    alarm_id: int
    start: int  # UTC ns: the alarm went active
    end: int | None  # when it returned to normal; None: still active at the end of the span read


def _activations(view: View, start: int, end: int) -> list[ColumnElement[bool]]:
    return [
        AlarmHistoryRow.action.in_(_ACTIVATIONS),
        AlarmHistoryRow.ts >= start,
        AlarmHistoryRow.ts < end,
        view.on_devices(AlarmRow.device_id),
    ]


async def by_device_and_priority(view: View, start: int, end: int) -> dict[tuple[str, str], int]:
    """Activations in [start, end) per (device, priority)."""
    query = (
        select(AlarmRow.device_id, AlarmRow.priority, func.count())
        .select_from(AlarmHistoryRow)
        .join(AlarmRow, AlarmRow.id == AlarmHistoryRow.alarm_id)
        .where(*_activations(view, start, end))
        .group_by(AlarmRow.device_id, AlarmRow.priority)
    )
    return {(device, priority): n for device, priority, n in (await view.session.execute(query)).all()}


async def per_window(view: View, start: int, end: int) -> dict[int, int]:
    """Activations in each 10-minute window from `start` (window k covers start + k*10 min), the
    empty windows left out."""
    window = ((AlarmHistoryRow.ts - start) // WINDOW_NS).label("window")
    query = (
        select(window, func.count())
        .select_from(AlarmHistoryRow)
        .join(AlarmRow, AlarmRow.id == AlarmHistoryRow.alarm_id)
        .where(*_activations(view, start, end))
        .group_by(window)
    )
    return {int(k): n for k, n in (await view.session.execute(query)).all()}


async def most_frequent(view: View, start: int, end: int, limit: int = 10) -> list[Frequent]:
    """The (rule, device) pairs that went active most often in [start, end)."""
    is_activation = AlarmHistoryRow.action.in_(_ACTIVATIONS)
    activations = func.sum(case((is_activation, 1), else_=0))
    flagged = func.sum(case((AlarmHistoryRow.action == AlarmAction.CHATTERING, 1), else_=0))
    query = (
        select(
            AlarmRow.rule_id,
            AlarmRow.device_id,
            func.max(AlarmRow.title_zh),
            func.max(AlarmRow.title_en),
            activations,
            flagged,
        )
        .select_from(AlarmHistoryRow)
        .join(AlarmRow, AlarmRow.id == AlarmHistoryRow.alarm_id)
        .where(
            AlarmHistoryRow.action.in_([*_ACTIVATIONS, AlarmAction.CHATTERING]),
            AlarmHistoryRow.ts >= start,
            AlarmHistoryRow.ts < end,
            view.on_devices(AlarmRow.device_id),
        )
        .group_by(AlarmRow.rule_id, AlarmRow.device_id)
        .having(activations > 0)
        .order_by(activations.desc(), AlarmRow.rule_id, AlarmRow.device_id)
        .limit(limit)
    )
    rows = (await view.session.execute(query)).all()
    return [Frequent(r, d, Text(zh or "", en or ""), int(n), bool(f)) for r, d, zh, en, n, f in rows]


async def emergencies(view: View, start: int, end: int) -> list[Emergency]:
    """Each emergency alarm that went active in [start, end), the first to do so first."""
    day = (
        select(AlarmHistoryRow.alarm_id, func.min(AlarmHistoryRow.ts).label("first"), func.count().label("times"))
        .where(AlarmHistoryRow.action.in_(_ACTIVATIONS), AlarmHistoryRow.ts >= start, AlarmHistoryRow.ts < end)
        .group_by(AlarmHistoryRow.alarm_id)
        .subquery()
    )
    query = (
        select(AlarmRow, day.c.first, day.c.times)
        .join(day, day.c.alarm_id == AlarmRow.id)
        .where(AlarmRow.priority == Priority.EMERGENCY.value, view.on_devices(AlarmRow.device_id))
        .order_by(day.c.first, AlarmRow.id)
    )
    return [
        Emergency(
            row.id,
            first,
            times,
            row.device_id,
            Text(row.title_zh, row.title_en),
            row.acked_at,
            row.acked_by,
            row.cleared_at,
            row.state.value,
        )
        for row, first, times in (await view.session.execute(query)).all()
    ]


async def chattering(view: View, start: int, end: int) -> int:
    """How many (rule, device) pairs the store found chattering in [start, end)."""
    pairs = (
        select(AlarmRow.rule_id, AlarmRow.device_id)
        .join(AlarmHistoryRow, AlarmHistoryRow.alarm_id == AlarmRow.id)
        .where(
            AlarmHistoryRow.action == AlarmAction.CHATTERING,
            AlarmHistoryRow.ts >= start,
            AlarmHistoryRow.ts < end,
            view.on_devices(AlarmRow.device_id),
        )
        .distinct()
        .subquery()
    )
    return int((await view.session.execute(select(func.count()).select_from(pairs))).scalar_one())


async def acknowledge_times(view: View, start: int, end: int) -> dict[str, Acks]:
    """Per priority: each activation in [start, end) paired, by a window function, with the
    acknowledgement that follows it in its alarm's history, if one does before it goes active again."""
    order = (AlarmHistoryRow.ts, AlarmHistoryRow.id)
    events = (
        select(
            AlarmHistoryRow.alarm_id,
            AlarmHistoryRow.ts,
            AlarmHistoryRow.action,
            func.lead(AlarmHistoryRow.action).over(partition_by=AlarmHistoryRow.alarm_id, order_by=order).label("next"),
            func.lead(AlarmHistoryRow.ts).over(partition_by=AlarmHistoryRow.alarm_id, order_by=order).label("next_ts"),
        )
        .where(AlarmHistoryRow.action.in_([*_ACTIVATIONS, AlarmAction.ACKNOWLEDGED]), AlarmHistoryRow.ts >= start)
        .subquery()
    )
    acked = events.c.next == AlarmAction.ACKNOWLEDGED
    query = (
        select(
            AlarmRow.priority,
            func.count(),
            func.sum(case((acked, 1), else_=0)),
            func.sum(case((acked, events.c.next_ts - events.c.ts), else_=0)),
        )
        .select_from(events)
        .join(AlarmRow, AlarmRow.id == events.c.alarm_id)
        .where(events.c.action.in_(_ACTIVATIONS), events.c.ts < end, view.on_devices(AlarmRow.device_id))
        .group_by(AlarmRow.priority)
    )
    return {p: Acks(int(n), int(a or 0), int(t or 0)) for p, n, a, t in (await view.session.execute(query)).all()}


async def events(view: View, since: int, now: int) -> list[AlarmEvent]:
    """The alarms' history entries in [since, now], in order."""
    query = (
        select(AlarmHistoryRow, AlarmRow)
        .join(AlarmRow, AlarmRow.id == AlarmHistoryRow.alarm_id)
        .where(AlarmHistoryRow.ts >= since, AlarmHistoryRow.ts <= now, view.on_devices(AlarmRow.device_id))
        .order_by(AlarmHistoryRow.ts, AlarmHistoryRow.id)
    )
    return [
        AlarmEvent(
            h.ts,
            a.id,
            a.priority,
            a.device_id,
            Text(a.title_zh, a.title_en),
            Text(a.message_zh, a.message_en),
            h.action,
            h.actor,
            h.detail,
        )
        for h, a in (await view.session.execute(query)).all()
    ]


async def open_alarms(view: View) -> list[OpenAlarm]:
    """The alarms open now, the highest priority first, then the longest active."""
    query = (
        select(AlarmRow)
        .where(AlarmRow.is_open, view.on_devices(AlarmRow.device_id))
        .order_by(_PRIORITY_RANK, AlarmRow.activated_at, AlarmRow.id)
    )
    return [
        OpenAlarm(
            a.id, a.priority, a.state.value, a.activated_at, a.device_id, Text(a.title_zh, a.title_en), a.acked_by
        )
        for a in (await view.session.scalars(query)).all()
    ]


async def outages(view: View, rule_ids: Collection[str], start: int, end: int) -> list[Outage]:
    """The outages by the rules `rule_ids` of the devices in view that overlap [start, end), read
    from the alarms' history up to `end`; one active at `end` has no end."""
    if not rule_ids:
        return []
    # An alarm not active now whose last return to normal came before `start` was over by then.
    alarms = select(AlarmRow.id).where(
        AlarmRow.rule_id.in_(sorted(rule_ids)),
        AlarmRow.raised_at < end,
        or_(AlarmRow.active, AlarmRow.cleared_at >= start),
        view.on_devices(AlarmRow.device_id),
    )
    query = (
        select(AlarmHistoryRow.alarm_id, AlarmRow.device_id, AlarmHistoryRow.ts, AlarmHistoryRow.action)
        .join(AlarmRow, AlarmRow.id == AlarmHistoryRow.alarm_id)
        .where(
            AlarmHistoryRow.alarm_id.in_(alarms),
            AlarmHistoryRow.action.in_([*_ACTIVATIONS, AlarmAction.RETURNED_TO_NORMAL]),
            AlarmHistoryRow.ts < end,
        )
        .order_by(AlarmHistoryRow.alarm_id, AlarmHistoryRow.ts, AlarmHistoryRow.id)
    )
    found: list[Outage] = []
    began: dict[int, tuple[str, int]] = {}  # alarm -> (device, start) while active
    for alarm_id, device, ts, action in (await view.session.execute(query)).all():
        if action in ACTIVATIONS:
            began.setdefault(alarm_id, (device, ts))
        elif alarm_id in began:
            device, since = began.pop(alarm_id)
            found.append(Outage(device, alarm_id, since, ts))
    found += [Outage(device, alarm_id, since, None) for alarm_id, (device, since) in began.items()]
    return sorted((o for o in found if o.end is None or o.end > start), key=lambda o: (o.start, o.alarm_id))


async def offline_at(view: View, rule_ids: Collection[str], ts: int) -> dict[str, Outage]:
    """The devices in view offline at `ts`, each with the outage that began first."""
    current: dict[str, Outage] = {}
    for outage in await outages(view, rule_ids, ts, ts + 1):
        current.setdefault(outage.device, outage)
    return current
