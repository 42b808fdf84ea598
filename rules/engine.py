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

from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from itertools import zip_longest
from typing import Any

from facility.model import DeviceStatus, Quality, Reading
from rules.expr import UNKNOWN, Compiled
from rules.ruleset import Rule


class State(Enum):
    NORMAL = "normal"
    PENDING = "pending"
    ACTIVE = "active"


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


class _Counter:
    """The rising edges (false -> true) of one count() condition on one device."""

    __slots__ = ("edges", "fn", "keep_ns", "known", "last")

    def __init__(self, fn: Compiled) -> None:
        self.fn = fn
        self.keep_ns = 0
        self.edges: deque[int] = deque()
        self.last = False  # before any value: a first true counts as an edge
        self.known = False

    def update(self, device: _Device, ts: int) -> None:
        value = self.fn(device.values, device)
        if value is UNKNOWN:
            return
        if value and not self.last:
            self.edges.append(ts)
            while self.edges[0] < ts - self.keep_ns:
                self.edges.popleft()
        self.last, self.known = bool(value), True


class _Point:
    """One watched point of a device: the conditions and counters reading it, the conditions
    whose texts list it (`listing`), its latest quality, and its recent (ts, value) samples when a
    rate() reads it."""

    __slots__ = ("conditions", "counters", "history", "keep_ns", "listing", "quality")

    def __init__(self) -> None:
        self.conditions: list[_Condition] = []
        self.counters: list[_Counter] = []
        self.listing: list[_Condition] = []
        self.history: deque[tuple[int, float]] | None = None
        self.keep_ns = 0
        self.quality: Quality | None = None

    def record(self, ts: int, value: object) -> None:
        history = self.history
        if history is None or not isinstance(value, int | float):
            return
        if history and history[-1][0] >= ts:  # a repeat of the same time replaces; an older one is late
            if history[-1][0] == ts:
                history[-1] = (ts, value)
            return
        history.append((ts, value))
        while history[0][0] < ts - self.keep_ns:
            history.popleft()


def _sample_ts(sample: tuple[int, float]) -> int:
    return sample[0]


class _Device:
    """One device's latest values and recent past; the scope its rules' functions read."""

    __slots__ = ("at", "building", "comm_lost", "conditions", "counters", "points", "values")

    def __init__(self, building: str) -> None:
        self.building = building
        self.values: dict[str, Any] = {}
        self.points: dict[str, _Point] = {}
        self.counters: dict[str, _Counter] = {}
        self.conditions: list[_Condition] = []
        self.comm_lost: bool | None = None  # None: not heard of yet
        self.at = 0  # the time expressions are judged at

    def point(self, name: str) -> _Point:
        point = self.points.get(name)
        if point is None:
            point = self.points[name] = _Point()
        return point

    def rate(self, point: str, window_ns: int) -> Any:
        history = self.points[point].history
        if self.values.get(point) is None or not history:
            return UNKNOWN
        first = bisect_left(history, self.at - window_ns, key=_sample_ts)
        if first == len(history):
            return UNKNOWN
        (t0, v0), (t1, v1) = history[first], history[-1]
        if 2 * (t1 - t0) < window_ns:  # the samples span less than half the window
            return UNKNOWN
        return (v1 - v0) * 60e9 / (t1 - t0)

    def count(self, key: str, window_ns: int) -> Any:
        counter = self.counters[key]
        if not counter.known:
            return UNKNOWN
        return len(counter.edges) - bisect_left(counter.edges, self.at - window_ns)

    def stale(self, point: str) -> Any:
        quality = self.points[point].quality
        return UNKNOWN if quality is None else quality is Quality.STALE

    def offline(self) -> Any:
        return UNKNOWN if self.comm_lost is None else self.comm_lost

    def take_over(self, old: _Device) -> None:
        """Carry values, quality, histories and counts over from the device's previous engine."""
        self.comm_lost = old.comm_lost
        for name, point in self.points.items():
            if name in old.values:
                self.values[name] = old.values[name]
            before = old.points.get(name)
            if before is None:
                continue
            point.quality = before.quality
            if point.history is not None and before.history is not None:
                point.history.extend(before.history)
        for key, counter in self.counters.items():
            previous = old.counters.get(key)
            if previous is not None:
                counter.edges, counter.last, counter.known = previous.edges, previous.last, previous.known


@dataclass(eq=False)
class _Condition:
    rule: Rule
    device: _Device
    device_id: str
    state: State = State.NORMAL
    since: int = 0
    told: bool = False  # an active Change was handed on and not cleared since
    told_suppressed: bool = False
    held: dict[str, str] = field(default_factory=dict)  # listed point -> value, held in the text since the raise


@dataclass
class _Conditions:
    """Every condition of a rule set, indexed by device, point and suppressing rule."""

    devices: dict[str, _Device] = field(default_factory=dict)
    by_key: dict[tuple[str, str], _Condition] = field(default_factory=dict)
    dependents: dict[str, list[_Condition]] = field(default_factory=dict)  # suppressing rule id -> suppressed

    @classmethod
    def of(cls, rules: Iterable[Rule]) -> _Conditions:
        out = cls()
        for rule in rules:
            for device_id, building in zip_longest(rule.devices, rule.buildings, fillvalue=""):
                device = out.devices.get(device_id)
                if device is None:
                    device = out.devices[device_id] = _Device(building)
                cond = _Condition(rule, device, device_id)
                out.by_key[(rule.id, device_id)] = cond
                device.conditions.append(cond)
                for name in rule.reads:
                    device.point(name).conditions.append(cond)
                for name in rule.shown:
                    device.point(name)  # kept for the alarm text, evaluates nothing
                for name in {point for point, _ in rule.lists}:
                    device.point(name).listing.append(cond)
                for suppressor in rule.spec.suppressed_by:
                    out.dependents.setdefault(suppressor.rule, []).append(cond)
                out._windows(rule, device)
        return out

    @staticmethod
    def _windows(rule: Rule, device: _Device) -> None:
        for expr in rule.expressions:
            for name, window in expr.rates:
                point = device.point(name)
                point.keep_ns = max(point.keep_ns, window)
                if point.history is None:
                    point.history = deque()
            for spec in expr.counters:
                counter = device.counters.get(spec.key)
                if counter is None:
                    counter = device.counters[spec.key] = _Counter(spec.fn)
                    for name in spec.names:
                        device.point(name).counters.append(counter)
                counter.keep_ns = max(counter.keep_ns, spec.window_ns)


class Engine:
    def __init__(self, rules: Iterable[Rule], on_change: Callable[[Change], None]) -> None:
        self._on_change = on_change
        self._all = _Conditions.of(rules)
        self._ticking: set[_Condition] = set()  # pending, or active with a window that moves on
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
        old, self._all = self._all, _Conditions.of(rules)
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
        touched: dict[_Condition, None] = {}
        counters: dict[_Counter, None] = {}
        listing: dict[_Condition, None] = {}  # whose listed points changed: their texts may grow
        snapshot: _Device | None = None
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
        device: _Device,
        ts: int,
        touched: dict[_Condition, None],
        counters: dict[_Counter, None],
        listing: dict[_Condition, None],
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

    def _spread(self, cond: _Condition, ts: int) -> None:
        """Hand on a told active condition again when a point joined its text's lists."""
        if cond.state is not State.ACTIVE or not cond.told:
            return
        values, held = cond.device.values, cond.held
        if any(values.get(point) == value and held.get(point) != value for point, value in cond.rule.lists):
            self._emit(cond, True, ts, cond.told_suppressed, spread=True)

    def _evaluate(self, cond: _Condition, ts: int) -> None:
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

    def _enter(self, cond: _Condition, state: State) -> None:
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

    def _announce(self, cond: _Condition, ts: int) -> None:
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

    def _emit(self, cond: _Condition, active: bool, ts: int, suppressed: bool, *, spread: bool = False) -> None:
        values = dict(cond.device.values)
        if cond.rule.lists:
            if active:  # the points listed now join those held since the raise
                cond.held.update((point, value) for point, value in cond.rule.lists if values.get(point) == value)
                values.update(cond.held)
            else:
                cond.held.clear()
        self._on_change(Change(cond.rule, cond.device_id, active, ts, values, suppressed, spread))

    def _suppressed(self, cond: _Condition) -> bool:
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
