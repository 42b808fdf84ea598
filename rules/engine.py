"""The rule engine: keeps each rule's condition per device (normal -> pending -> active).

It is fed batches of readings and evaluates, after each device snapshot, only the conditions that
read the points in it. Besides the latest values it keeps what the functions of rules.expr need:
a short history of the points rate() reads, the rising edges count() counts, each point's quality
(stale()) and whether the device is offline (offline()).

A condition can be inhibited (suppressed by design) while it is active: by its rule's `unless`,
by a `suppressed_by` rule active in its scope, or, for a rule about values, by its device being
offline. A condition that becomes active while inhibited is not announced until the inhibition
ends while it still holds.

While a condition is active, the points its rule's `{points_in:...}` texts list are followed: when
one joins the list (a second zone in fire), the change is handed on again as a `spread`, with the
text's values holding every point listed since the raise. A point leaving the list (a zone reset)
does not shrink it while the condition is active, as a fire panel holds its zones until reset.
Only these points are followed: other values in a text are as they were at the raise.

`tick` promotes pending conditions whose `for` has elapsed even when no new reading arrives, and
re-judges active conditions whose windows move on with time. Changes are handed to `on_change`;
the engine never waits on I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from facility.model import DeviceStatus, Quality, Reading
from rules.conditions import Condition, Conditions, DeviceState, EdgeCounter, State
from rules.expr import UNKNOWN
from rules.ruleset import Rule


@dataclass(frozen=True)
class Change:
    """A condition became active (`active=True`) or cleared; or, while active, an inhibition
    began or ended (`suppressed`): the alarm is then suppressed by design, not announced; or,
    while active, a point joined one of its text's `{points_in:...}` lists (`spread`): its title
    and message change. `values` are the values the texts show: a listed point held in its list
    since the raise keeps its listed value there even after its reading moved on."""

    rule: Rule
    device: str
    active: bool
    ts: int
    values: dict[str, Any]
    suppressed: bool = False
    spread: bool = False


class Engine:
    """Judges the conditions of one rule set from readings, statuses and time; hands each change to
    `on_change` at once (rules.outcomes journals it), never waiting on I/O."""

    def __init__(self, rules: Iterable[Rule], on_change: Callable[[Change], None]) -> None:
        self._on_change = on_change
        self._all = Conditions.of(rules)
        self._ticking: set[Condition] = set()  # pending, or active with a window that moves on
        self._active: dict[str, set[str]] = {}  # suppressing rule id -> devices where it is active

    def restore(self, active: Iterable[tuple[str, str]]) -> None:
        """Resume conditions that were active before a restart, so that they can clear."""
        for key in active:
            cond = self._all.by_key.get(key)
            if cond is not None:
                cond.told = True
                self._enter(cond, State.ACTIVE)

    def reload(self, rules: Iterable[Rule], ts: int) -> None:
        """Swap in a new rule set. A condition whose rule id, device and `when`/`clear` texts are
        unchanged keeps its state; an active one that does not carry over is cleared. Values,
        quality, histories and counts carry over, so no rule waits for readings it has seen."""
        old, self._all = self._all, Conditions.of(rules)
        self._ticking.clear()
        self._active.clear()
        for device_id, device in self._all.devices.items():
            if device_id in old.devices:
                device.take_over(old.devices[device_id])
        for key, before in old.by_key.items():
            cond = self._all.by_key.get(key)
            same = cond is not None and (cond.rule.spec.when, cond.rule.spec.clear) == (
                before.rule.spec.when,
                before.rule.spec.clear,
            )
            if cond is not None and same:
                cond.since, cond.told, cond.told_suppressed = before.since, before.told, before.told_suppressed
                cond.held = before.held
                self._enter(cond, before.state)
            elif before.told:
                self._on_change(Change(before.rule, before.device_id, False, ts, dict(before.device.values)))
        for cond in self._all.by_key.values():
            if cond.state is State.ACTIVE:
                self._announce(cond, ts)  # the inhibitions may differ under the new rules

    def handle(self, readings: Sequence[Reading]) -> None:
        """Evaluate after each device snapshot (one device's readings at one time, as a message
        or a poll delivers them), so that a condition that holds only briefly inside a batch is
        still seen, and never on a half-updated snapshot."""
        devices = self._all.devices
        touched: dict[Condition, None] = {}
        counters: dict[EdgeCounter, None] = {}
        listing: dict[Condition, None] = {}  # whose listed points changed: their texts may grow
        snapshot: DeviceState | None = None
        snapshot_ts = 0
        for r in readings:
            device = devices.get(r.device)
            if device is None:
                continue
            point = device.points.get(r.point)
            quality = r.quality
            if quality is Quality.GOOD or quality is Quality.BAD:  # heard from: online
                flips = device.comm_lost is not False
            else:
                flips = quality is Quality.NO_COMM and device.comm_lost is not True
            if point is None and not flips:
                continue
            if device is not snapshot or r.ts != snapshot_ts:
                if snapshot is not None:
                    self._settle(snapshot, snapshot_ts, touched, counters, listing)
                snapshot, snapshot_ts = device, r.ts
            if flips:
                device.comm_lost = quality is Quality.NO_COMM
                touched.update(dict.fromkeys(device.conditions))
            if point is not None:
                value = r.value if quality is Quality.GOOD else None
                if point.listing and value != device.values.get(r.point):
                    listing.update(dict.fromkeys(point.listing))
                device.values[r.point] = value
                point.quality = quality
                if point.history is not None and value is not None:
                    point.record(r.ts, value)
                for counter in point.counters:
                    counters[counter] = None
                for cond in point.conditions:
                    touched[cond] = None
        if snapshot is not None:
            self._settle(snapshot, snapshot_ts, touched, counters, listing)

    def status(self, status: DeviceStatus) -> None:
        """A device's own word on its status: online, it is heard from (communication loss
        clears) though its values stay unknown until they come; offline, it is without
        communication. Its conditions are judged again when that changes."""
        device = self._all.devices.get(status.device)
        if device is None or device.comm_lost is (not status.online):
            return
        device.comm_lost = not status.online
        device.at = status.ts
        for cond in device.conditions:
            self._evaluate(cond, status.ts)

    def tick(self, now_ns: int) -> None:
        for cond in list(self._ticking):
            self._evaluate(cond, now_ns)

    def _settle(
        self,
        device: DeviceState,
        ts: int,
        touched: dict[Condition, None],
        counters: dict[EdgeCounter, None],
        listing: dict[Condition, None],
    ) -> None:
        device.at = ts
        for counter in counters:
            counter.update(device, ts)
        counters.clear()
        for cond in touched:
            self._evaluate(cond, ts)
        touched.clear()
        for cond in listing:  # after the evaluation: a raise in this snapshot lists them already
            self._spread(cond, ts)
        listing.clear()

    def _spread(self, cond: Condition, ts: int) -> None:
        """Hand on a told active condition again when a point joined its text's lists."""
        if cond.state is not State.ACTIVE or not cond.told:
            return
        values, held = cond.device.values, cond.held
        if any(values.get(point) == value and held.get(point) != value for point, value in cond.rule.lists):
            self._emit(cond, True, ts, cond.told_suppressed, spread=True)

    def _evaluate(self, cond: Condition, ts: int) -> None:
        rule, device = cond.rule, cond.device
        device.at = ts
        values = device.values
        state = cond.state
        if state is State.ACTIVE:
            if rule.clear is not None:
                cleared = rule.clear.fn(values, device)
                if cleared is not UNKNOWN and cleared:
                    state = State.NORMAL
            else:
                held = rule.when.fn(values, device)
                if held is not UNKNOWN and not held:
                    state = State.NORMAL
        else:
            held = rule.when.fn(values, device)
            if held is UNKNOWN or not held:
                state = State.NORMAL
            else:
                if state is State.NORMAL:
                    state, cond.since = State.PENDING, ts
                if ts - cond.since >= rule.for_ns:
                    state = State.ACTIVE
        was_active = cond.state is State.ACTIVE
        if state is not cond.state:
            self._enter(cond, state)
        if state is State.ACTIVE or cond.told:
            self._announce(cond, ts)
        if was_active is not (state is State.ACTIVE) and rule.id in self._all.dependents:
            for dependent in self._all.dependents[rule.id]:
                if dependent.state is State.ACTIVE:
                    self._announce(dependent, ts)

    def _enter(self, cond: Condition, state: State) -> None:
        """Set the state and the indexes that follow from it."""
        cond.state = state
        if state is State.PENDING or (state is State.ACTIVE and cond.rule.windowed):
            self._ticking.add(cond)
        else:
            self._ticking.discard(cond)
        if cond.rule.id in self._all.dependents:
            where = self._active.setdefault(cond.rule.id, set())
            if state is State.ACTIVE:
                where.add(cond.device_id)
            else:
                where.discard(cond.device_id)

    def _announce(self, cond: Condition, ts: int) -> None:
        """Hand on what changed in the condition as the alarm side sees it: raised, inhibited,
        announced again, cleared. An active condition first seen while inhibited stays silent."""
        if cond.state is State.ACTIVE:
            suppressed = self._suppressed(cond)
            if not cond.told:
                if suppressed:
                    return
                cond.told = True
            elif suppressed is cond.told_suppressed:
                return
            cond.told_suppressed = suppressed
            self._emit(cond, True, ts, suppressed)
        elif cond.told:
            cond.told = cond.told_suppressed = False
            self._emit(cond, False, ts, False)

    def _emit(self, cond: Condition, active: bool, ts: int, suppressed: bool, *, spread: bool = False) -> None:
        values = dict(cond.device.values)
        if cond.rule.lists:
            if active:  # the points listed now join those held since the raise
                cond.held.update((point, value) for point, value in cond.rule.lists if values.get(point) == value)
                values.update(cond.held)
            else:
                cond.held.clear()
        self._on_change(Change(cond.rule, cond.device_id, active, ts, values, suppressed, spread))

    def _suppressed(self, cond: Condition) -> bool:
        rule, device = cond.rule, cond.device
        if device.comm_lost and rule.judges_values:
            return True
        if rule.unless is not None:
            unless = rule.unless.fn(device.values, device)
            if unless is not UNKNOWN and unless:
                return True
        for suppressor in rule.spec.suppressed_by:
            where = self._active.get(suppressor.rule)
            if not where:
                continue
            if suppressor.scope == "site" or cond.device_id in where:
                return True
            if suppressor.scope == "building" and device.building:
                devices = self._all.devices
                if any(devices[d].building == device.building for d in where):
                    return True
        return False
