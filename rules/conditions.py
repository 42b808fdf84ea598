"""The state the rule engine keeps per device (rules.engine): each condition, each watched point's
latest quality and recent samples, each count() condition's rising edges, indexed so that a reading
reaches only the conditions that read its point.

Kept apart from the engine's logic so that each reads on its own: this module is what is held, and
how a device's state carries over to the next engine on a reload; rules.engine is how readings,
statuses and time move it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from itertools import zip_longest
from typing import Any

from facility.model import Quality
from rules.expr import UNKNOWN, Compiled
from rules.ruleset import Rule


class State(Enum):
    """Where a rule's condition is on one device: pending is `when` holding for less than `for`."""

    NORMAL = "normal"
    PENDING = "pending"
    ACTIVE = "active"


class EdgeCounter:
    """The rising edges (false -> true) of one count() condition on one device."""

    __slots__ = ("edges", "fn", "keep_ns", "known", "last")

    def __init__(self, fn: Compiled) -> None:
        self.fn = fn
        self.keep_ns = 0
        self.edges: deque[int] = deque()
        self.last = False  # before any value: a first true counts as an edge
        self.known = False

    def update(self, device: DeviceState, ts: int) -> None:
        value = self.fn(device.values, device)
        if value is UNKNOWN:
            return
        if value and not self.last:
            self.edges.append(ts)
            while self.edges[0] < ts - self.keep_ns:
                self.edges.popleft()
        self.last, self.known = bool(value), True


class WatchedPoint:
    """One watched point of a device: the conditions and counters reading it, the conditions
    whose texts list it (`listing`), its latest quality, and its recent (ts, value) samples when a
    rate() reads it."""

    __slots__ = ("conditions", "counters", "history", "keep_ns", "listing", "quality")

    def __init__(self) -> None:
        self.conditions: list[Condition] = []
        self.counters: list[EdgeCounter] = []
        self.listing: list[Condition] = []
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


class DeviceState:
    """One device's latest values and recent past; the scope its rules' functions read."""

    __slots__ = ("at", "building", "comm_lost", "conditions", "counters", "points", "values")

    def __init__(self, building: str) -> None:
        self.building = building
        self.values: dict[str, Any] = {}
        self.points: dict[str, WatchedPoint] = {}
        self.counters: dict[str, EdgeCounter] = {}
        self.conditions: list[Condition] = []
        self.comm_lost: bool | None = None  # None: not heard of yet
        self.at = 0  # the time expressions are judged at

    def point(self, name: str) -> WatchedPoint:
        point = self.points.get(name)
        if point is None:
            point = self.points[name] = WatchedPoint()
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

    def take_over(self, old: DeviceState) -> None:
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
class Condition:
    """One rule's condition on one device, and what the alarm side was last told of it."""

    rule: Rule
    device: DeviceState
    device_id: str
    state: State = State.NORMAL
    since: int = 0
    told: bool = False  # an active Change was handed on and not cleared since
    told_suppressed: bool = False
    held: dict[str, str] = field(default_factory=dict)  # listed point -> value, held in the text since the raise


@dataclass
class Conditions:
    """Every condition of a rule set, indexed by device, point and suppressing rule."""

    devices: dict[str, DeviceState] = field(default_factory=dict)
    by_key: dict[tuple[str, str], Condition] = field(default_factory=dict)
    dependents: dict[str, list[Condition]] = field(default_factory=dict)  # suppressing rule id -> suppressed

    @classmethod
    def of(cls, rules: Iterable[Rule]) -> Conditions:
        out = cls()
        for rule in rules:
            for device_id, building in zip_longest(rule.devices, rule.buildings, fillvalue=""):
                device = out.devices.get(device_id)
                if device is None:
                    device = out.devices[device_id] = DeviceState(building)
                cond = Condition(rule, device, device_id)
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
    def _windows(rule: Rule, device: DeviceState) -> None:
        for expr in rule.expressions:
            for name, window in expr.rates:
                point = device.point(name)
                point.keep_ns = max(point.keep_ns, window)
                if point.history is None:
                    point.history = deque()
            for spec in expr.counters:
                counter = device.counters.get(spec.key)
                if counter is None:
                    counter = device.counters[spec.key] = EdgeCounter(spec.fn)
                    for name in spec.names:
                        device.point(name).counters.append(counter)
                counter.keep_ns = max(counter.keep_ns, spec.window_ns)
