"""The audit log of the API: every request that asks for a change, with who, when, from where, what
and how it ended (the status). Records of their own (alarm and task histories, the audited Modbus
write) say more of each change; this log is the one place that lists them all, refused ones too.

A request without a valid token is not recorded: it changed nothing and names no one.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import SAFE_METHODS
from facility.model import now_ns
from facility.store.ops import OpsStore

log = logging.getLogger(__name__)


class AuditChanges:
    """ASGI middleware: for each changing request that named a user, one audit entry, written as
    the answer starts (so entries are in the order the answers were given)."""

    def __init__(self, app: ASGIApp, ops: OpsStore) -> None:
        self._app = app
        self._ops = ops

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self._app(scope, receive, send)
            return
        ts = now_ns()
        recorded = False

        async def sending(message: Message) -> None:
            nonlocal recorded
            if message["type"] == "http.response.start" and not recorded:
                recorded = True  # before the client hears the answer, so it never sees an unrecorded change
                await self._record(scope, message["status"], ts)
            await send(message)

        try:
            await self._app(scope, receive, sending)
        finally:
            if not recorded:  # the app failed before answering
                await self._record(scope, 500, ts)

    async def _record(self, scope: Scope, status: int, ts: int) -> None:
        user = scope.get("state", {}).get("user")
        if user is None:
            return
        actor = user.name
        route = scope.get("route")
        detail: dict[str, Any] = {"status": status}
        if scope.get("query_string"):
            detail["query"] = scope["query_string"].decode("latin-1")
        outcome = "ok" if status < 400 else "refused" if status < 500 else "failed"
        try:
            await self._ops.add_audit(
                ts=ts,
                actor=actor,
                source=(scope.get("client") or ("",))[0],
                action=f"{scope['method']} {getattr(route, 'path', scope['path'])}",
                target=scope["path"],
                detail=detail,
                outcome=outcome,
            )
        except Exception:
            log.exception("audit log: cannot record %s %s by %s", scope["method"], scope["path"], actor)
