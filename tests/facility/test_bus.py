"""The event lane of the bus: numbered events, replay after a given id, and what happens to a
subscriber that cannot keep up."""

from __future__ import annotations

import asyncio

from facility.bus import BootTimeIds, Event, LocalBus
from facility.vocabulary import EventKind


def drain(queue: asyncio.Queue[Event]) -> list[Event]:
    out = []
    while not queue.empty():
        out.append(queue.get_nowait())
    return out


async def test_ids_increase_and_start_above_any_id_of_an_earlier_run() -> None:
    earlier = LocalBus()
    last = [earlier.publish_event(EventKind.ALARM, {"n": i}).id for i in range(3)][-1]
    later = LocalBus()
    first = later.publish_event(EventKind.ALARM, {}).id
    assert first > last  # ids from before a restart are older than every id after it


async def test_a_subscriber_resumes_after_the_last_id_it_saw() -> None:
    bus = LocalBus(replay=100)
    ids = [bus.publish_event(EventKind.ALARM, {"n": i}).id for i in range(10)]
    with bus.subscribe(after=ids[6]) as queue:
        newest = bus.publish_event(EventKind.TASK, {"n": 10})
        got = drain(queue)
    assert [e.data["n"] for e in got] == [7, 8, 9, 10]  # missed ones first, in order, then live

    with bus.subscribe(after=newest.id) as queue:
        assert drain(queue) == []  # nothing missed


async def test_an_id_no_longer_kept_gets_a_reset_instead_of_a_gap() -> None:
    bus = LocalBus(replay=5)
    ids = [bus.publish_event(EventKind.ALARM, {"n": i}).id for i in range(10)]
    with bus.subscribe(after=ids[2]) as queue:  # events 3 and 4 are gone
        (reset,) = drain(queue)
    assert (reset.kind, reset.id) == (EventKind.RESET, ids[-1])  # resuming from the reset's id misses nothing more

    with bus.subscribe(after=ids[4]) as queue:  # the oldest kept is 5: nothing is missing
        assert [e.data["n"] for e in drain(queue)] == [5, 6, 7, 8, 9]

    with bus.subscribe(after=ids[-1] + 1000) as queue:  # an id this bus never gave (another server's)
        assert [e.kind for e in drain(queue)] == [EventKind.RESET]


async def test_a_bounded_subscriber_that_falls_behind_is_cut_off_whole() -> None:
    bus = LocalBus()
    with bus.subscribe(limit=3) as slow, bus.subscribe() as internal:
        for i in range(5):
            bus.publish_event(EventKind.ALARM, {"n": i})
        assert bus.cut_off(slow) and not bus.cut_off(internal)
        assert [e.data["n"] for e in drain(slow)] == [0, 1, 2]  # what it had, then nothing: it must resume
        assert [e.data["n"] for e in drain(internal)] == [0, 1, 2, 3, 4]  # an unbounded queue never drops
        bus.publish_event(EventKind.ALARM, {"n": 5})
        assert drain(slow) == []


async def test_a_replay_longer_than_a_bounded_queue_is_a_reset() -> None:
    bus = LocalBus()
    ids = [bus.publish_event(EventKind.ALARM, {"n": i}).id for i in range(10)]
    with bus.subscribe(after=ids[0], limit=5) as queue:
        assert [e.kind for e in drain(queue)] == [EventKind.RESET]


async def test_buses_given_one_allocator_number_their_events_from_it() -> None:
    ids = BootTimeIds()
    first, second = LocalBus(ids), LocalBus(ids)
    numbered = [bus.publish_event(EventKind.TASK, {}).id for bus in (first, second, first)]
    assert numbered == sorted(set(numbered)) and ids.last() == numbered[-1]  # one source: never the same id twice
