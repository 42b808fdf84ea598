"""The event lane of the bus: numbered events, replay after a given id, and what happens to a
subscriber that cannot keep up."""

from __future__ import annotations

import asyncio

from facility.bus import RESET, Bus, Event


def drain(queue: asyncio.Queue[Event]) -> list[Event]:
    out = []
    while not queue.empty():
        out.append(queue.get_nowait())
    return out


async def test_ids_increase_and_start_above_any_id_of_an_earlier_run() -> None:
    earlier = Bus()
    last = [earlier.publish_event("alarm", {"n": i}).id for i in range(3)][-1]
    later = Bus()
    first = later.publish_event("alarm", {}).id
    assert first > last  # ids from before a restart are older than every id after it


async def test_a_subscriber_resumes_after_the_last_id_it_saw() -> None:
    bus = Bus(replay=100)
    ids = [bus.publish_event("alarm", {"n": i}).id for i in range(10)]
    with bus.subscribe(after=ids[6]) as queue:
        newest = bus.publish_event("task", {"n": 10})
        got = drain(queue)
    assert [e.data["n"] for e in got] == [7, 8, 9, 10]  # missed ones first, in order, then live

    with bus.subscribe(after=newest.id) as queue:
        assert drain(queue) == []  # nothing missed


async def test_an_id_no_longer_kept_gets_a_reset_instead_of_a_gap() -> None:
    bus = Bus(replay=5)
    ids = [bus.publish_event("alarm", {"n": i}).id for i in range(10)]
    with bus.subscribe(after=ids[2]) as queue:  # events 3 and 4 are gone
        (reset,) = drain(queue)
    assert (reset.kind, reset.id) == (RESET, ids[-1])  # resuming from the reset's id misses nothing more

    with bus.subscribe(after=ids[4]) as queue:  # the oldest kept is 5: nothing is missing
        assert [e.data["n"] for e in drain(queue)] == [5, 6, 7, 8, 9]

    with bus.subscribe(after=ids[-1] + 1000) as queue:  # an id this bus never gave (another server's)
        assert [e.kind for e in drain(queue)] == [RESET]


async def test_a_bounded_subscriber_that_falls_behind_is_cut_off_whole() -> None:
    bus = Bus()
    with bus.subscribe(limit=3) as slow, bus.subscribe() as internal:
        for i in range(5):
            bus.publish_event("alarm", {"n": i})
        assert bus.cut_off(slow) and not bus.cut_off(internal)
        assert [e.data["n"] for e in drain(slow)] == [0, 1, 2]  # what it had, then nothing: it must resume
        assert [e.data["n"] for e in drain(internal)] == [0, 1, 2, 3, 4]  # an unbounded queue never drops
        bus.publish_event("alarm", {"n": 5})
        assert drain(slow) == []


async def test_a_replay_longer_than_a_bounded_queue_is_a_reset() -> None:
    bus = Bus()
    ids = [bus.publish_event("alarm", {"n": i}).id for i in range(10)]
    with bus.subscribe(after=ids[0], limit=5) as queue:
        assert [e.kind for e in drain(queue)] == [RESET]
