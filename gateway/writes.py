"""Audited writes: every attempt to write a point leaves one entry in the ops store's audit log.

Why here, beside the gateway, and not in the API: the allow-list is enforced by `Gateway.write`,
the one door to the buses, so that no caller (the API today, a CLI or an MQTT command topic
tomorrow) can skip it; auditing wraps that door for the same reason. The API receives this as a
plain callable (`facility.writes.WritePoint`) from the runtime and imports nothing of the gateway.

The entry is written *before* the device is touched (outcome `pending`) and finished after: if the
audit log cannot be written, nothing is written to the plant; if the process dies mid-write, the
log still shows the attempt.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from sqlalchemy.exc import SQLAlchemyError

from facility.model import Value, now_ns
from facility.store.ops import OpsStore, OpsUnavailable
from facility.writes import AuditUnavailable, DeviceOffline, DeviceRefused, WriteError

log = logging.getLogger(__name__)


class Door(Protocol):
    """Where a checked write goes: the estate's gateway here (`Gateway`), or in another process
    (`gateway.remote_writes.RemoteGateway`). Either checks the allow-list at the estate."""

    async def write(self, device_id: str, point: str, value: Value, *, actor: str, source: str) -> Value: ...


class AuditedWrites:
    """`facility.writes.WritePoint` over the door to the estate's buses and an ops store."""

    def __init__(self, gateway: Door | None, ops: OpsStore) -> None:
        """`gateway` None: no gateway can be reached from this process (docs/scale-out.md), so a
        write is refused, and the attempt audited like any other."""
        self._gateway = gateway
        self._ops = ops

    async def __call__(self, device: str, point: str, value: Value, *, actor: str, source: str) -> Value:
        """Write and return the confirmed value; raises the WriteError that refused or failed it."""
        detail: dict[str, Any] = {"value": value}
        try:
            entry = await self._ops.audit.add(
                ts=now_ns(),
                actor=actor,
                source=source,
                action="write",
                target=f"{device}/{point}",
                detail=detail,
                outcome="pending",
                device=device,  # a building's managers see the writes to its devices
            )
        except (SQLAlchemyError, OpsUnavailable) as exc:
            log.error("audit log unavailable, write of %s/%s by %s not attempted: %s", device, point, actor, exc)
            raise AuditUnavailable("the audit log cannot be written, so nothing was written") from None
        try:
            if self._gateway is None:
                raise DeviceOffline(f"no gateway polling {device} can be reached from this process")
            confirmed = await self._gateway.write(device, point, value, actor=actor, source=source)
        except WriteError as exc:
            error: dict[str, Any] = {"error": str(exc), "reason": type(exc).__name__}
            if isinstance(exc, DeviceRefused):
                error["exception_code"] = exc.code
            await self._finish(entry, exc.outcome, {**detail, **error})
            raise
        except Exception as exc:
            await self._finish(entry, "failed", {**detail, "error": repr(exc)})
            raise
        await self._finish(entry, "ok", {**detail, "confirmed": confirmed})
        return confirmed

    async def _finish(self, entry: int, outcome: str, detail: dict[str, Any]) -> None:
        """Record the outcome; a store that fails now leaves the entry `pending`, which is still true."""
        try:
            await self._ops.audit.finish(entry, outcome, detail)
        except SQLAlchemyError as exc:
            log.error("audit entry %d stays pending (outcome %s): %s", entry, outcome, exc)
