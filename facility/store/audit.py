"""The audit log of the ops store: every change someone asked for (a Modbus write, a device taken
out of service, a task or plan action), who asked, when, from where, and how it ended.

A change is recorded `pending` before it is tried and finished after, so that one the process did
not live to finish still shows who asked for it.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from facility.records import AuditEntry
from facility.store.tables import AuditRow


class AuditLog:
    """The audit entries of one ops store (`OpsStore.audit`)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def add(
        self,
        *,
        ts: int,
        actor: str,
        source: str,
        action: str,
        target: str,
        detail: dict[str, Any],
        outcome: str,
        device: str | None = None,
        site_wide: bool = False,
    ) -> int:
        """Record a change asked for; returns its id, so that a `pending` entry can be finished.
        `device` (or `site_wide`) is whose building it concerns, when that is known (see AuditRow)."""
        async with self._sessions.begin() as s:
            row = AuditRow(
                ts=ts,
                actor=actor,
                source=source,
                action=action,
                target=target,
                detail=audit_json(detail),
                outcome=outcome,
                device=device,
                site_wide=site_wide,
            )
            s.add(row)
            await s.flush()
            return row.id

    async def finish(self, audit_id: int, outcome: str, detail: dict[str, Any]) -> None:
        """Set how a pending entry ended; who, when and where stay as recorded."""
        async with self._sessions.begin() as s:
            row = await s.get(AuditRow, audit_id)
            if row is None:
                raise KeyError(audit_id)
            row.outcome, row.detail = outcome, audit_json(detail)

    async def entries(self, limit: int = 100, devices: Collection[str] | None = None) -> list[AuditEntry]:
        """The most recent audit entries, newest first; with `devices`, only those concerning one of
        them or a site-wide record (what a user limited to their buildings may learn of)."""
        query = select(AuditRow)
        if devices is not None:
            query = query.where(or_(AuditRow.site_wide, AuditRow.device.in_(sorted(devices))))
        async with self._sessions() as s:
            rows = await s.scalars(query.order_by(AuditRow.id.desc()).limit(limit))
            return [
                AuditEntry(r.id, r.ts, r.actor, r.source, r.action, r.target, json.loads(r.detail), r.outcome)
                for r in rows
            ]


def audit_json(detail: dict[str, Any]) -> str:
    """An entry's detail as stored: JSON, keys sorted, any value that JSON lacks as its text."""
    return json.dumps(detail, ensure_ascii=False, sort_keys=True, default=str)
