"""The bus joining gateway, rules and API: a narrow protocol, and its in-process implementation.

Three lanes, kept narrow so that an MQTT transport can stand in for scale-out (`Bus` is what
callers type against; `LocalBus` is the one process implementation):
- readings: synchronous fan-out of batches to handlers (the hot path; handlers must be quick);
- device status: a device said it is online or offline, fanned out synchronously like readings
  and in the same order with them (a publisher hands on the readings it read before a status
  first), so that the rule engine sees an offline, its no-communication marks and an online in the
  order they came; each is also published as a `device` event for the desk;
- events: alarm, task, plan and device changes, numbered, delivered to every subscriber through its
  own queue. Alarms never share a queue that can drop: an internal subscriber's queue is unbounded;
  a bounded one (a desk's event stream) that overflows is cut off whole, never thinned, and its
  client resumes from the last event it got.

The last `replay` events are kept, so that a client that lost its connection can resume after the
last id it saw (SSE's Last-Event-ID). Event ids have one owner, an `EventIds` allocator the bus is
given: in one process `BootTimeIds`, which starts at the boot time in microseconds, so an id from
before a restart is older than any after it and is answered with a `reset` (reload everything);
several processes publishing to one stream share one allocator instead (a database sequence).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from facility.model import DeviceStatus, Reading
from facility.vocabulary import EventKind

log = logging.getLogger(__name__)

ReadingHandler = Callable[[Sequence[Reading]], None]
StatusHandler = Callable[[DeviceStatus], None]


@dataclass(frozen=True, slots=True)
class Event:
    """A change the desk should hear about, numbered by the bus's `EventIds`."""

    id: int
    kind: EventKind
    data: dict[str, Any]


class EventIds(Protocol):
    """Where event ids come from: each id above every id handed out before, across restarts, so
    that a subscriber's last id says what it missed. One allocator per event stream, however many
    processes publish to it."""

    def last(self) -> int:
        """The newest id handed out, or a mark below the first id to come."""
        ...

    def next(self) -> int:
        """A new id, above every id handed out before."""
        ...


class BootTimeIds:
    """Ids for one process: a counter from the boot time in microseconds, so that the ids of a
    restarted service start above those of its last run (it would have to publish a million events
    a second to catch up with the clock)."""

    def __init__(self) -> None:
        self._last = time.time_ns() // 1000

    def last(self) -> int:
        return self._last

    def next(self) -> int:
        self._last += 1
        return self._last


class Bus(Protocol):
    """What the parts see of the bus: the three lanes, with replay and cut-off for event readers."""

    def on_readings(self, handler: ReadingHandler) -> None:
        """Call `handler` with every batch of readings, in order, on the publisher's stack."""
        ...

    def publish_readings(self, readings: Sequence[Reading]) -> None:
        """Hand a batch to every readings handler."""
        ...

    def on_status(self, handler: StatusHandler) -> None:
        """Call `handler` with every device status, in order with the readings."""
        ...

    def publish_status(self, status: DeviceStatus) -> None:
        """Hand a device's status to the status handlers, then announce it as a `device` event."""
        ...

    def publish_event(self, kind: EventKind, data: dict[str, Any]) -> Event:
        """Number an event and deliver it to every subscriber."""
        ...

    def subscribe(self, after: int | None = None, limit: int = 0) -> AbstractContextManager[asyncio.Queue[Event]]:
        """A queue of the events published while open, after those missed since `after`."""
        ...

    def cut_off(self, queue: asyncio.Queue[Event]) -> bool:
        """Whether a bounded queue overflowed and hears nothing more."""
        ...


class LocalBus:
    """The bus inside one process: handlers called in place, events through asyncio queues."""

    def __init__(self, ids: EventIds | None = None, replay: int = 10_000) -> None:
        self._reading_handlers: list[ReadingHandler] = []
        self._status_handlers: list[StatusHandler] = []
        self._subscribers: dict[asyncio.Queue[Event], None] = {}  # insertion order: who hears first
        self._cut_off: set[asyncio.Queue[Event]] = set()
        self._recent: deque[Event] = deque(maxlen=replay)
        self._ids = ids or BootTimeIds()
        self._seq = self._ids.last()  # the newest id this bus published (or the mark below its first)

    def on_readings(self, handler: ReadingHandler) -> None:
        self._reading_handlers.append(handler)

    def publish_readings(self, readings: Sequence[Reading]) -> None:
        for handler in self._reading_handlers:
            try:
                handler(readings)
            except Exception:  # one broken consumer must not starve the others
                log.exception("reading handler %r failed", handler)

    def on_status(self, handler: StatusHandler) -> None:
        self._status_handlers.append(handler)

    def publish_status(self, status: DeviceStatus) -> None:
        """Hand a device's status to the status handlers, then to every subscriber as a `device`
        event ({device, online})."""
        for handler in self._status_handlers:
            try:
                handler(status)
            except Exception:  # as for readings: one broken consumer must not starve the others
                log.exception("device status handler %r failed", handler)
        self.publish_event(EventKind.DEVICE, {"device": status.device, "online": status.online})

    def publish_event(self, kind: EventKind, data: dict[str, Any]) -> Event:
        self._seq = self._ids.next()
        event = Event(self._seq, kind, data)
        self._recent.append(event)
        for queue in list(self._subscribers):
            if queue.full():
                del self._subscribers[queue]
                self._cut_off.add(queue)
                log.warning("an event subscriber fell %d events behind and was cut off", queue.maxsize)
            else:
                queue.put_nowait(event)
        return event

    @contextmanager
    def subscribe(self, after: int | None = None, limit: int = 0) -> Iterator[asyncio.Queue[Event]]:
        """A queue receiving every event published while the context is open; with `after`, first
        the kept events numbered above it, or one `reset` event if some of those are no longer kept.
        `limit` bounds the queue (0: unbounded); see `cut_off`."""
        queue: asyncio.Queue[Event] = asyncio.Queue(limit)
        for event in self._missed(after, limit):
            queue.put_nowait(event)
        self._subscribers[queue] = None
        try:
            yield queue
        finally:
            self._subscribers.pop(queue, None)
            self._cut_off.discard(queue)

    def _missed(self, after: int | None, limit: int) -> list[Event]:
        """The events after `after` still kept, or a `reset` standing for them when some are gone
        (or more than a bounded queue holds)."""
        if after is None or after == self._seq:
            return []
        oldest = self._recent[0].id if self._recent else self._seq + 1
        missed = [event for event in self._recent if event.id > after]
        if after < oldest - 1 or after > self._seq or (limit and len(missed) >= limit):
            return [Event(self._seq, EventKind.RESET, {})]
        return missed

    def cut_off(self, queue: asyncio.Queue[Event]) -> bool:
        """Whether a bounded queue overflowed and hears nothing more: its reader should drain it and
        end, so that its client reconnects and resumes."""
        return queue in self._cut_off
