"""Condition changes are carried out in order, even across a store failure: a clear never
overtakes its raise, and what is announced before it is stored says so (`recorded: false`)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from facility.bus import Bus
from facility.site import Site
from facility.store.ops import OpsStore
from rules.engine import Change
from rules.journal import Journal
from rules.outcomes import Outcomes
from rules.service import RulesService
from tests.rules.conftest import rules_running
from testsupport.system import eventually

Restore = Callable[[], Awaitable[None]]


@asynccontextmanager
async def alarms_table_gone(site: Site, db: Path) -> AsyncIterator[tuple[RulesService, Bus, OpsStore, Restore]]:
    """The rules service running on a store broken for real: its alarms table renamed away.
    The last item brings the table back."""
    async with rules_running(site, f"sqlite+aiosqlite:///{db}") as (service, bus, store):
        await asyncio.to_thread(rename, db, "alarms", "alarms_away")
        yield service, bus, store, lambda: asyncio.to_thread(rename, db, "alarms_away", "alarms")


async def test_changes_wait_for_a_failed_store_and_keep_their_order(
    site: Site, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with alarms_table_gone(site, tmp_path / "ops.db") as (service, bus, store, restore):
        (rule,) = service.rules
        with bus.subscribe() as events:
            service.outcomes.changed(Change(rule, "pump-1", True, 1, {"outlet_pressure": 0.2}))
            service.outcomes.changed(Change(rule, "pump-1", False, 2, {"outlet_pressure": 0.35}))
            await eventually(lambda: _logged(caplog, "cannot record the alarm of low-pressure on pump-1"), 10)
            shown = await asyncio.wait_for(events.get(), 5)
            assert shown.data["recorded"] is False and "id" not in shown.data  # shown, and says it is not stored
            assert events.empty()

            await restore()
            raised = await asyncio.wait_for(events.get(), 15)
            returned = await asyncio.wait_for(events.get(), 15)
        assert (raised.data["state"], returned.data["state"]) == ("unacknowledged", "rtn_unacknowledged")
        (stored,) = await store.alarms.list_alarms()
        assert stored.state == "rtn_unacknowledged" and stored.cleared_at == 2


def rename(db: Path, table: str, to: str) -> None:
    """In a worker thread: the service's own connection must go on to release its locks meanwhile."""
    with sqlite3.connect(db, timeout=30) as conn:
        conn.execute(f"ALTER TABLE {table} RENAME TO {to}")


async def _logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return any(text in record.getMessage() for record in caplog.records)


async def test_stopping_with_the_store_down_gives_up_in_time_and_says_so(
    site: Site, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with alarms_table_gone(site, tmp_path / "ops.db") as (service, _bus, store, restore):
        (rule,) = service.rules
        leftover = Outcomes(  # one that is stopping
            service.lifecycle.alarms,
            service.lifecycle.tasks,
            service.lifecycle.plans,
            Journal(tmp_path / "leftover"),
            store,
            rule_of={rule.id: rule}.get,
            schedule_of=lambda _: None,
        )
        leftover.recover()
        leftover.changed(Change(rule, "pump-1", True, 1, {"outlet_pressure": 0.2}))
        await leftover.drain(timeout=1.0)  # returns although the store never answers
        assert "stopping with 1 rule outcomes journaled, not yet recorded" in caplog.text
        await restore()
        assert await store.alarms.list_alarms() == []
