"""What each part of a running service says of itself: its readiness and its figures.

The API serves both (`/readyz` names every part with its state and the age of its last success;
`/metrics` gives the figures to Prometheus) without knowing the parts: each part that has
something to say is a `Reporter`, and the runtime hands them all to one `Readiness`. Reporters are
asked only when someone looks, so the hot path keeps plain integer counters and pays nothing for
being observed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, Protocol


class State(StrEnum):
    UP = "up"  # doing its job
    DEGRADED = "degraded"  # doing it, but something a person should know is wrong (a spool 80% full)
    DOWN = "down"  # not doing it: its work waits (spooled, journaled) or is not done


@dataclass(frozen=True, slots=True)
class PartState:
    """One part's readiness, e.g. `PartState("ops store", "ops_store", State.DOWN, ...)`."""

    name: str  # what an operator calls it: "telemetry store", "broker 127.0.0.1:1883", "modbus 10.0.0.5:502"
    kind: str  # the kind of part, a metric label: telemetry_store, spool, ops_store, broker, modbus_bus, outcomes
    state: State
    last_success_ns: int | None = None  # UTC ns of its last success (a write taken, a poll answered); None: never
    detail: str = ""  # why it is not up, in a sentence


@dataclass(frozen=True, slots=True)
class Figure:
    """One sample for /metrics. `name` has no prefix (`readings_stored_total`); the API adds
    `facility_`. Counters only ever grow while the process lives."""

    name: str
    help: str
    kind: Literal["counter", "gauge"]
    value: float
    labels: tuple[tuple[str, str], ...] = ()


class Reporter(Protocol):
    def parts(self) -> Iterable[PartState]:
        """The parts this object answers for (may be none)."""
        ...

    def figures(self) -> Iterable[Figure]:
        """Its figures at this moment (may be none)."""
        ...


class Readiness:
    """Every reporter of one process, asked together."""

    def __init__(self, reporters: Iterable[Reporter] = ()) -> None:
        self._reporters: list[Reporter] = list(reporters)

    def add(self, reporter: Reporter) -> None:
        self._reporters.append(reporter)

    def parts(self) -> list[PartState]:
        return [part for reporter in self._reporters for part in reporter.parts()]

    def figures(self) -> list[Figure]:
        return [figure for reporter in self._reporters for figure in reporter.figures()]
