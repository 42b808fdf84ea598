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
    """ASGI middleware: after each changing request that named a user, one audit entry."""

    def __init__(self, app: ASGIApp, ops: OpsStore) -> None:
        self._app = app
        self._ops = ops

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self._app(scope, receive, send)
            return
        ts = now_ns()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, sending)
        finally:
            user = scope.get("state", {}).get("user")
            if user is not None:
                await self._record(scope, user.name, status, ts)

    async def _record(self, scope: Scope, actor: str, status: int, ts: int) -> None:
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
