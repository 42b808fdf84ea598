"""One session of the ops store seen through a device limit: what every read-side query runs in."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, true
from sqlalchemy.ext.asyncio import AsyncSession

from facility.store.ops import OpsStore
from facility.store.task_queries import of_devices


@dataclass(frozen=True)
class View:
    """A session and the devices its queries may see (None: the whole site)."""

    session: AsyncSession
    limit: frozenset[str] | None

    def on_devices(self, column: Any) -> ColumnElement[bool]:
        """Condition on a column holding a device id: within the limit."""
        return true() if self.limit is None else column.in_(sorted(self.limit))

    def tasks(self) -> ColumnElement[bool]:
        """Tasks within the limit, site-wide tasks (no device) always."""
        return true() if self.limit is None else of_devices(self.limit)


@asynccontextmanager
async def open_view(ops: OpsStore, devices: Collection[str] | None, site: str | None = None) -> AsyncIterator[View]:
    """A view of `ops` limited to `devices` (None: the whole site), for the queries of one report;
    of the store's own estate, or of the estate `site` (the company view reads each estate's
    records with the same queries its own reports use)."""
    async with ops.sessions(**({} if site is None else {"info": {"site": site}})) as session:
        yield View(session, None if devices is None else frozenset(devices))
