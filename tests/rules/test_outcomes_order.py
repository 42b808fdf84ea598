"""Condition changes are carried out in order, even across a store failure: a clear never
overtakes its raise, and nothing is announced that was not stored."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from facility.site import Site
from rules.engine import Change
from rules.outcomes import Outcomes
from tests.rules.conftest import rules_running
from tests.system import eventually


async def test_changes_wait_for_a_failed_store_and_keep_their_order(
    site: Site, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "ops.db"
    async with rules_running(site, f"sqlite+aiosqlite:///{db}") as (service, bus, store):
        (rule,) = service.rules
        # Break the store for real: the alarms table disappears from under the service.
        await asyncio.to_thread(rename, db, "alarms", "alarms_away")
        with bus.subscribe() as events:
            service.outcomes.changed(Change(rule, "pump-1", True, 1, {"outlet_pressure": 0.2}))
            service.outcomes.changed(Change(rule, "pump-1", False, 2, {"outlet_pressure": 0.35}))
            await eventually(lambda: _logged(caplog, "cannot record the alarm of low-pressure on pump-1"), 10)
            assert events.empty()  # nothing announced that was not stored

            await asyncio.to_thread(rename, db, "alarms_away", "alarms")
            raised = await asyncio.wait_for(events.get(), 15)
            returned = await asyncio.wait_for(events.get(), 15)
        assert (raised.data["state"], returned.data["state"]) == ("unacknowledged", "rtn_unacknowledged")
        (stored,) = await store.list_alarms()
        assert stored["state"] == "rtn_unacknowledged" and stored["cleared_at"] == 2


def rename(db: Path, table: str, to: str) -> None:
    """In a worker thread: the service's own connection must go on to release its locks meanwhile."""
    with sqlite3.connect(db, timeout=30) as conn:
        conn.execute(f"ALTER TABLE {table} RENAME TO {to}")


async def _logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return any(text in record.getMessage() for record in caplog.records)


async def test_stopping_with_the_store_down_gives_up_in_time_and_says_so(
    site: Site, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "ops.db"
    async with rules_running(site, f"sqlite+aiosqlite:///{db}") as (service, _bus, store):
        (rule,) = service.rules
        await asyncio.to_thread(rename, db, "alarms", "alarms_away")
        leftover = Outcomes(service.alarms, service.tasks, service.plans)  # one that is stopping
        leftover.changed(Change(rule, "pump-1", True, 1, {"outlet_pressure": 0.2}))
        await leftover.drain(timeout=1.0)  # returns although the store never answers
        assert "stopping with 1 rule outcomes not recorded" in caplog.text
        await asyncio.to_thread(rename, db, "alarms_away", "alarms")
        assert await store.list_alarms() == []
