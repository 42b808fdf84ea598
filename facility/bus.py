"""The in-process bus joining gateway, rules and API.

Two lanes, kept narrow so that an MQTT transport can stand in for scale-out:
- readings: synchronous fan-out of batches to handlers (the hot path; handlers must be quick);
- events: alarm and device changes, numbered, delivered to every subscriber through its own
  unbounded queue. Alarms never share a queue that can drop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from facility.model import Reading

log = logging.getLogger(__name__)

ReadingHandler = Callable[[Sequence[Reading]], None]


@dataclass(frozen=True, slots=True)
class Event:
    """A change the desk should hear about: kind is e.g. `alarm` or `device`."""

    id: int
    kind: str
    data: dict[str, Any]


class Bus:
    def __init__(self) -> None:
        self._reading_handlers: list[ReadingHandler] = []
        self._subscribers: set[asyncio.Queue[Event]] = set()
        self._seq = 0

    def on_readings(self, handler: ReadingHandler) -> None:
        self._reading_handlers.append(handler)

    def publish_readings(self, readings: Sequence[Reading]) -> None:
        for handler in self._reading_handlers:
            try:
                handler(readings)
            except Exception:  # one broken consumer must not starve the others
                log.exception("reading handler %r failed", handler)

    def publish_event(self, kind: str, data: dict[str, Any]) -> Event:
        self._seq += 1
        event = Event(self._seq, kind, data)
        for queue in self._subscribers:
            queue.put_nowait(event)
        return event

    @contextmanager
    def subscribe(self) -> Iterator[asyncio.Queue[Event]]:
        """A queue receiving every event published while the context is open."""
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)
