"""The rule engine: keeps each rule's condition per device (normal -> pending -> active).

It is fed batches of readings and evaluates only the rules that read the points in the batch.
`tick` promotes pending conditions whose `for` has elapsed even when no new reading arrives.
Changes are handed to `on_change`; the engine never waits on I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from facility.model import Quality, Reading
from rules.expr import UNKNOWN
from rules.ruleset import Rule


class State(Enum):
    NORMAL = "normal"
    PENDING = "pending"
    ACTIVE = "active"


@dataclass(frozen=True)
class Change:
    """A condition became active (`active=True`) or cleared; or, while active, an inhibition
    began or ended (`suppressed`): the alarm is then suppressed by design, not announced."""

    rule: Rule
    device: str
    active: bool
    ts: int
    values: dict[str, Any]
    suppressed: bool = False


@dataclass
class _Condition:
    rule: Rule
    device: str
    state: State = State.NORMAL
    since: int = 0


@dataclass
class _DeviceState:
    values: dict[str, Any] = field(default_factory=dict)
    by_point: dict[str, list[_Condition]] = field(default_factory=dict)


class Engine:
    def __init__(self, rules: Iterable[Rule], on_change: Callable[[Change], None]) -> None:
        self._on_change = on_change
        self._devices: dict[str, _DeviceState] = {}
        self._conditions: dict[tuple[str, str], _Condition] = {}
        self._pending: set[tuple[str, str]] = set()
        for rule in rules:
            for device in rule.devices:
                cond = _Condition(rule, device)
                self._conditions[(rule.id, device)] = cond
                state = self._devices.setdefault(device, _DeviceState())
                for name in rule.reads:
                    state.by_point.setdefault(name, []).append(cond)
                for name in rule.shown:
                    state.by_point.setdefault(name, [])  # kept for the alarm text, evaluates nothing

    def restore(self, active: Iterable[tuple[str, str]]) -> None:
        """Resume conditions that were active before a restart, so that they can clear."""
        for key in active:
            cond = self._conditions.get(key)
            if cond is not None:
                cond.state = State.ACTIVE

    def handle(self, readings: Sequence[Reading]) -> None:
        """Evaluate after each device snapshot (one device's readings at one time, as a message
        or a poll delivers them), so that a condition that holds only briefly inside a batch is
        still seen, and never on a half-updated snapshot."""
        touched: dict[int, _Condition] = {}
        snapshot: tuple[str, int] | None = None
        for r in readings:
            state = self._devices.get(r.device)
            if state is None:
                continue
            conditions = state.by_point.get(r.point)
            if conditions is None:
                continue
            if snapshot != (r.device, r.ts):
                if touched:
                    self._evaluate_all(touched, snapshot[1] if snapshot else r.ts)
                snapshot = (r.device, r.ts)
            state.values[r.point] = r.value if r.quality is Quality.GOOD else None
            for cond in conditions:
                touched[id(cond)] = cond
        if touched and snapshot:
            self._evaluate_all(touched, snapshot[1])

    def _evaluate_all(self, touched: dict[int, _Condition], ts: int) -> None:
        for cond in touched.values():
            self._evaluate(cond, ts)
        touched.clear()

    def tick(self, now_ns: int) -> None:
        for key in list(self._pending):
            self._evaluate(self._conditions[key], now_ns)

    def _evaluate(self, cond: _Condition, ts: int) -> None:
        rule = cond.rule
        values = self._devices[cond.device].values
        if cond.state is State.ACTIVE:
            if rule.clear is not None:
                cleared = rule.clear.evaluate(values)
                if cleared is not UNKNOWN and cleared:
                    self._set(cond, State.NORMAL, ts, values)
            else:
                held = rule.when.evaluate(values)
                if held is not UNKNOWN and not held:
                    self._set(cond, State.NORMAL, ts, values)
            return
        held = rule.when.evaluate(values)
        if held is UNKNOWN or not held:
            if cond.state is State.PENDING:
                cond.state = State.NORMAL
                self._pending.discard((rule.id, cond.device))
            return
        if cond.state is State.NORMAL:
            cond.state, cond.since = State.PENDING, ts
            self._pending.add((rule.id, cond.device))
        if ts - cond.since >= rule.for_ns:
            self._pending.discard((rule.id, cond.device))
            self._set(cond, State.ACTIVE, ts, values)

    def _set(self, cond: _Condition, state: State, ts: int, values: dict[str, Any]) -> None:
        cond.state = state
        self._on_change(Change(cond.rule, cond.device, state is State.ACTIVE, ts, dict(values)))
