"""The lease on a site's rules, on the PostgreSQL server this machine runs: one holder at a time,
a standby that takes it when the holder goes, and a holder that learns when it can no longer show
that it holds it."""

from __future__ import annotations

import asyncio

import pytest

from facility.store import lease as lease_module
from facility.store.lease import LeaseLost, SiteLease, needs_lease
from testsupport.pg import end_lock_sessions, fresh_database


def test_only_a_shared_database_needs_a_lease() -> None:
    assert needs_lease("postgresql+asyncpg://facility@db/facility")
    assert not needs_lease("sqlite+aiosqlite:///var/ops.db")


async def test_one_holder_at_a_time_and_a_standby_takes_over() -> None:
    async with fresh_database() as url:
        first, second, other_site = SiteLease(url, "north"), SiteLease(url, "north"), SiteLease(url, "south")
        stopping = asyncio.Event()
        try:
            assert await first.acquire(stopping)
            waiting = asyncio.create_task(second.acquire(stopping))
            assert await asyncio.wait_for(other_site.acquire(stopping), 5), "another site's lock is its own"
            await asyncio.sleep(3 * lease_module.ACQUIRE_EVERY_S)  # a standby asking several times ...
            assert not waiting.done() and not second.owner  # ... gets nothing while the owner holds it
            assert [p.state.value for p in second.parts()] == ["degraded"]
            await first.release()
            assert await asyncio.wait_for(waiting, 5)
            assert second.owner and [p.state.value for p in second.parts()] == ["up"]
        finally:
            stopping.set()
            for lease in (first, second, other_site):
                await lease.release()


async def test_a_holder_whose_session_is_ended_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lease_module, "CHECK_EVERY_S", 0.1)
    async with fresh_database() as url:
        holder = SiteLease(url, "north")
        try:
            assert await holder.acquire(asyncio.Event())
            watching = asyncio.create_task(holder.held())
            await asyncio.sleep(0.3)
            assert not watching.done()
            # The server ends the holder's session, as it does for a connection it has lost.
            ended = await end_lock_sessions(url)
            assert ended == 1
            with pytest.raises(LeaseLost, match="rules of site north: the lease's connection failed"):
                await asyncio.wait_for(watching, 10)
            assert holder.lost and not holder.owner
        finally:
            await holder.release()
