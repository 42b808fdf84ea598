"""Small asyncio helpers shared by the long-running parts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable


def raise_if_cancelled() -> None:
    """Re-raise a cancellation that a library swallowed.

    On Python 3.11, `asyncio.wait_for` (used inside pymodbus) can swallow a cancellation that
    arrives just as its inner future completes; a loop that would otherwise go on for ever checks
    here once per round.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def cancel_all(tasks: Iterable[asyncio.Task[object]]) -> None:
    """Cancel tasks and wait until each has finished its cleanup."""
    tasks = [t for t in tasks if not t.done()]
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
