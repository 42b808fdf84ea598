"""Turns condition changes into alarms in the ops store, carries out operator actions, and watches
the alarm lifecycle over time: shelf expiry, chattering, escalation and floods.

`record` stores one condition change (rules.outcomes calls it, in the engine's order, retrying
while the store is down). `run` checks the clock-driven parts every `check_every_s`. Every stored
change is announced on the bus as an `alarm` event; escalations and floods have their own events
(`escalation`, `flood`) for the notifiers and the desk. An alarm that waits for the store is
announced at once by `announce_provisional`: an `alarm` event with `recorded: false` and no id (a
recorded alarm's event has no `recorded` key), which the desk and the notifiers match to the
recorded one by rule and device.

A spread (a point joining the lists of an active alarm's text: a second zone in fire) updates the
alarm's title and message, records a `spread` history entry, and is announced as an `alarm` event
with `spread: true`, which the notifiers pass on to people again.

Refused actions raise `ActionRefused` (a Conflict saying why); an unknown alarm id raises `NotFound`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from facility.bus import Bus
from facility.model import AlarmState, Priority, now_ns
from facility.records import AlarmRecord, NewAlarm
from facility.site import Site
from facility.store.alarms import MINUTE_NS, ActionRefused
from facility.store.ops import OpsStore, OpsUnavailable
from facility.vocabulary import ACTIVATIONS, AlarmAction, EventKind
from rules.engine import Change
from rules.flood import NO_FLOOD, FloodWatch
from rules.ruleset import RuleTexts, rule_texts

log = logging.getLogger(__name__)


class AlarmService:
    def __init__(
        self,
        site: Site,
        store: OpsStore,
        bus: Bus,
        *,
        clock: Callable[[], int] = now_ns,
        check_every_s: float = 1.0,
        escalate_emergency_ns: int = 2 * MINUTE_NS,
        escalate_high_ns: int = 10 * MINUTE_NS,
    ) -> None:
        self._site = site
        self._store = store
        self._bus = bus
        self._clock = clock
        self._check_every_s = check_every_s
        self._escalate_after = {Priority.EMERGENCY.value: escalate_emergency_ns, Priority.HIGH.value: escalate_high_ns}
        self._flood = FloodWatch(store.sessions, lambda state: bus.publish_event(EventKind.FLOOD, state))

    async def run(self) -> None:
        """Check the clock-driven lifecycle every `check_every_s` until cancelled."""
        failing = False
        while True:
            await asyncio.sleep(self._check_every_s)
            try:
                await self.check()
            except OpsUnavailable as exc:
                if not failing:  # once per outage: the store being down is logged by rules.outcomes too
                    log.warning("alarm lifecycle checks wait for the ops store: %s", exc)
                failing = True
            except Exception:
                if not failing:
                    log.exception("alarm lifecycle check failed; trying again every %s s", self._check_every_s)
                failing = True
            else:
                failing = False

    async def check(self) -> None:
        """One round of the clock-driven lifecycle: expired shelves, quiet chatter, escalation, flood end."""
        now = self._clock()
        for alarm in await self._store.alarms.unshelve_expired(now):
            self.announce(alarm)
        for alarm in await self._store.alarms.clear_quiet_chattering(now):
            self.announce(alarm)
        for alarm in await self._store.alarms.escalate_due(self._escalate_after, now):
            self.announce(alarm)
            self._bus.publish_event(EventKind.ESCALATION, alarm.as_json())
        await self._flood.check(now)

    async def flood_state(self) -> dict[str, Any]:
        """{active: true, count, since} during a flood (count: raised in the last 10 min), else {active: false};
        for a desk that connects in the middle of one. Judged from the alarm history (rules.flood), so
        that a process other than the rule worker answers alike."""
        flood = await self._flood.state(self._clock())
        return dict(NO_FLOOD) if flood is None else flood.shown()

    async def record(self, change: Change) -> tuple[AlarmRecord | None, str | None]:
        """Store one change and announce it: the alarm as it now stands and the history action
        recorded ("raised", "raised again", "returned to normal", ...), or None for either when
        nothing changed."""
        if not change.active:
            returned = await self._store.alarms.return_to_normal(change.rule.id, change.device, change.ts)
            if returned is None:
                return None, None
            return self._announced(returned), AlarmAction.RETURNED_TO_NORMAL
        new = self._new_alarm(change)
        if change.spread:
            spread, action = await self._store.alarms.spread_alarm(new)
            if spread is not None:  # else no active alarm holds the condition: it is raised
                if action is not None:
                    self._bus.publish_event(EventKind.ALARM, {**spread.as_json(), "spread": True})
                return spread, action
        alarm, action = await self._store.alarms.raise_alarm(new)
        if action is None:
            return alarm, None
        self.announce(alarm)
        if action in ACTIVATIONS and alarm.announced:
            try:  # the alarm is recorded: a failure to judge the flood must not have it recorded again
                await self._flood.raised(change.ts)
            except Exception:
                log.warning("cannot judge the alarm flood at this raise; the next raise judges it again", exc_info=True)
        return alarm, action

    async def acknowledge(self, alarm_id: int, user: str, source: str) -> AlarmRecord:
        return self._announced(await self._store.alarms.acknowledge(alarm_id, user, source, self._clock()))

    async def shelve(self, alarm_id: int, user: str, source: str, reason: str, until_ns: int) -> AlarmRecord:
        """Shelve until `until_ns`, at most 24 h ahead; it unshelves by itself then."""
        return self._announced(await self._store.alarms.shelve(alarm_id, user, source, reason, until_ns, self._clock()))

    async def unshelve(self, alarm_id: int, user: str, source: str) -> AlarmRecord:
        return self._announced(await self._store.alarms.unshelve(alarm_id, user, source, self._clock()))

    async def comment(self, alarm_id: int, user: str, source: str, text: str) -> AlarmRecord:
        return self._announced(await self._store.alarms.comment(alarm_id, user, source, text, self._clock()))

    async def set_out_of_service(self, device: str, on: bool, user: str, source: str, reason: str) -> list[AlarmRecord]:
        """Take a device of this site out of service or put it back; returns its open alarms, now flagged."""
        if device not in {d.id for d in self._site.devices}:
            raise ActionRefused(f"no device {device!r} on site {self._site.site.id}")
        alarms = await self._store.alarms.set_out_of_service(device, on, user, source, reason, self._clock())
        for alarm in alarms:
            self.announce(alarm)
        return alarms

    def _announced(self, alarm: AlarmRecord) -> AlarmRecord:
        self.announce(alarm)
        return alarm

    def announce(self, alarm: AlarmRecord) -> None:
        """Announce a recorded alarm as it stands; rules.outcomes also calls it to replace a
        provisional announcement when recording changed nothing (an outcome applied again)."""
        self._bus.publish_event(EventKind.ALARM, alarm.as_json())

    def announce_provisional(self, change: Change) -> None:
        """Announce at once an alarm the ops store has not recorded yet (it is journaled), so that the
        desk shows it and the notifiers tell people: no id, `recorded: false`, and only what the rule
        and the readings know (not whether someone shelved it or took its device out of service)."""
        new = self._new_alarm(change)
        state = AlarmState.SUPPRESSED if new.suppressed else AlarmState.UNACKNOWLEDGED
        self._bus.publish_event(
            EventKind.ALARM,
            {
                "rule": new.rule_id,
                "device": new.device_id,
                "priority": new.priority,
                "state": state.value,
                "active": True,
                "acknowledged": False,
                "title": {"zh": new.title_zh, "en": new.title_en},
                "message": {"zh": new.message_zh, "en": new.message_en},
                "ts": new.ts,
                "raised_at": new.ts,
                "changed_at": new.ts,
                "shelved": False,
                "suppressed": new.suppressed,
                "out_of_service": False,
                "chattering": False,
                "escalated": False,
                "recorded": False,
                **({"spread": True} if change.spread else {}),
            },
        )

    def texts(self, change: Change) -> RuleTexts:
        """The title and message the change gives the alarm, as its rule's templates fill them."""
        return rule_texts(change.rule.spec, self._site, change.device, change.values)

    def _new_alarm(self, change: Change) -> NewAlarm:
        spec = change.rule.spec
        texts = self.texts(change)
        return NewAlarm(
            rule_id=spec.id,
            device_id=change.device,
            priority=spec.priority.value,
            title_zh=texts.title_zh,
            title_en=texts.title_en,
            message_zh=texts.message_zh,
            message_en=texts.message_en,
            ts=change.ts,
            suppressed=change.suppressed,
        )
