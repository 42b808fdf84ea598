"""Which rules watch communication, and when each device was cut off by one of them.

A device is offline while an alarm of a communication rule (one whose condition calls `offline()`)
is active on it: from each activation to its return to normal. An alarm that has returned to normal
but is not acknowledged yet is still open on the desk, yet the device answers again, so it counts as
back; that is what availability means.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from facility.site import Site
from facility.store.ops import ACTIVATIONS, AlarmHistoryRow, AlarmRow
from reports.scope import Scope
from rules.ruleset import Rule, load_rules

RETURNED = "returned to normal"
_STRING = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'")
_OFFLINE = re.compile(r"\boffline\s*\(")


def watches_communication(rule: Rule) -> bool:
    """Whether the rule's condition calls offline(): it fires on a device that stopped answering."""
    return bool(_OFFLINE.search(_STRING.sub("", rule.when.text)))


def communication_rules(site: Site, rules: Iterable[Rule] | None = None) -> frozenset[str]:
    """Ids of the communication rules among `rules` (default: the site's rule files as they are now)."""
    return frozenset(r.id for r in (load_rules(site) if rules is None else rules) if watches_communication(r))


@dataclass(frozen=True)
class Outage:
    device: str
    alarm_id: int
    start: int  # UTC ns: the alarm went active
    end: int | None  # when it returned to normal; None: still active at the end of the span read


async def outages(s: AsyncSession, rule_ids: Collection[str], scope: Scope, start: int, end: int) -> list[Outage]:
    """The outages of the devices in view that overlap [start, end), read from the alarms' history
    up to `end`; one active at `end` has no end."""
    if not rule_ids:
        return []
    # An alarm not active now whose last return to normal came before `start` was over by then.
    alarms = select(AlarmRow.id).where(
        AlarmRow.rule_id.in_(sorted(rule_ids)),
        AlarmRow.raised_at < end,
        or_(AlarmRow.active, AlarmRow.cleared_at >= start),
        scope.on_devices(AlarmRow.device_id),
    )
    query = (
        select(AlarmHistoryRow.alarm_id, AlarmRow.device_id, AlarmHistoryRow.ts, AlarmHistoryRow.action)
        .join(AlarmRow, AlarmRow.id == AlarmHistoryRow.alarm_id)
        .where(
            AlarmHistoryRow.alarm_id.in_(alarms),
            AlarmHistoryRow.action.in_([*ACTIVATIONS, RETURNED]),
            AlarmHistoryRow.ts < end,
        )
        .order_by(AlarmHistoryRow.alarm_id, AlarmHistoryRow.ts, AlarmHistoryRow.id)
    )
    found: list[Outage] = []
    began: dict[int, tuple[str, int]] = {}  # alarm -> (device, start) while active
    for alarm_id, device, ts, action in (await s.execute(query)).all():
        if action in ACTIVATIONS:
            began.setdefault(alarm_id, (device, ts))
        elif alarm_id in began:
            device, since = began.pop(alarm_id)
            found.append(Outage(device, alarm_id, since, ts))
    found += [Outage(device, alarm_id, since, None) for alarm_id, (device, since) in began.items()]
    return sorted((o for o in found if o.end is None or o.end > start), key=lambda o: (o.start, o.alarm_id))


async def offline_at(s: AsyncSession, rule_ids: Collection[str], scope: Scope, ts: int) -> dict[str, Outage]:
    """The devices in view offline at `ts`, each with the outage that began first."""
    current: dict[str, Outage] = {}
    for outage in await outages(s, rule_ids, scope, ts, ts + 1):
        current.setdefault(outage.device, outage)
    return current
