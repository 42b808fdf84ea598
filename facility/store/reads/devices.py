"""Device queries of the reports: which devices were out of service at a time, from the audit log
(each change of it is recorded there, with who did it and why)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import select

from facility.store.reads.view import View
from facility.store.tables import AuditRow
from facility.vocabulary import AlarmAction


@dataclass(frozen=True)
class OutOfService:
    """A device out of service: since when, by whom, and why."""

    device: str
    since: int
    by: str
    reason: str


async def out_of_service(view: View, ts: int) -> list[OutOfService]:
    """Devices in view out of service at `ts`, the longest out first."""
    changes = [AlarmAction.OUT_OF_SERVICE, AlarmAction.BACK_IN_SERVICE]
    query = (
        select(AuditRow)
        .where(
            AuditRow.action.in_(changes), AuditRow.outcome == "ok", AuditRow.ts <= ts, view.on_devices(AuditRow.target)
        )
        .order_by(AuditRow.ts, AuditRow.id)
    )
    latest = {row.target: row for row in (await view.session.scalars(query)).all()}
    return [
        OutOfService(row.target, row.ts, row.actor, json.loads(row.detail).get("reason", ""))
        for row in sorted(latest.values(), key=lambda r: (r.ts, r.target))
        if row.action == AlarmAction.OUT_OF_SERVICE
    ]
