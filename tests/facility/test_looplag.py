"""The event loop's part of the readiness view, from the moment its monitor runs."""

from __future__ import annotations

import asyncio
import contextlib
import time

from facility.looplag import LoopLag
from facility.readiness import State


async def test_a_monitor_that_has_just_started_is_up_with_the_time_it_started() -> None:
    """A probe that asks before the first interval has passed must get a time of the last success
    (the loop ran the monitor just now), not "up, but never on time"."""
    lag = LoopLag(interval_s=30.0)  # no wake-up within this test
    assert list(lag.parts()) == []  # not running: it says nothing
    before = time.time_ns()
    task = asyncio.create_task(lag.run())
    await asyncio.sleep(0)  # the task starts, and sleeps towards its first wake-up
    try:
        (part,) = lag.parts()
        assert part.state is State.UP
        assert part.last_success_ns is not None and before <= part.last_success_ns <= time.time_ns()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
