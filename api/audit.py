"""The audit log of the API: every request that asks for a change, with who, when, from where, what
and how it ended (the status). Records of their own (alarm and task histories, the audited Modbus
write) say more of each change; this log is the one place that lists them all, refused ones too.

A request without a valid token is not recorded: it changed nothing and names no one.

Each entry also says whose building it concerns (`Concerns`), so that a manager limited to
buildings reads only their buildings' entries: the device in the path (`/devices/{id}/...`), the
device of the alarm, task or plan instance the path names, or the device the body names (a task
made by hand). A task of no device is site-wide, as everywhere in the API. An entry that concerns
no record (a rule reload, an id that names nothing) is for the whole site's managers only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import SAFE_METHODS
from api.body import MAX_ID
from facility.errors import NotFound
from facility.model import now_ns
from facility.store.ops import OpsStore
from facility.store.plans import PlanStore
from facility.store.tasks import TaskStore

log = logging.getLogger(__name__)

BODY_KEPT = 64 * 1024  # of a change's body, read for the device it names; a longer one names none
SITE_WIDE_WITHOUT_DEVICE = frozenset({"POST /tasks"})  # actions that make a site-wide record when no device is named
RECORD_IDS = ("alarm_id", "task_id", "instance_id")  # path parameters naming an alarm, a task, a plan instance


@dataclass(frozen=True)
class Concerns:
    """Whose building an entry concerns: a device's, or every building's (`site_wide`: a record
    of no device); neither: only the whole site's managers read it."""

    device: str | None = None
    site_wide: bool = False

    @classmethod
    def of(cls, device: str | None) -> Concerns:
        """The concerns of an alarm, task or plan instance of `device` (None: a site-wide record)."""
        return cls(device, site_wide=device is None)


class AuditChanges:
    """ASGI middleware: for each changing request that named a user, one audit entry, written as
    the answer starts (so entries are in the order the answers were given)."""

    def __init__(self, app: ASGIApp, ops: OpsStore) -> None:
        self._app = app
        self._ops = ops
        self._tasks = TaskStore(ops)
        self._plans = PlanStore(ops)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self._app(scope, receive, send)
            return
        ts = now_ns()
        recorded = False
        body = bytearray()

        async def receiving() -> Message:
            message = await receive()
            if message["type"] == "http.request" and len(body) <= BODY_KEPT:  # a byte more tells a longer one
                body.extend(message.get("body", b"")[: BODY_KEPT + 1 - len(body)])
            return message

        async def sending(message: Message) -> None:
            nonlocal recorded
            if message["type"] == "http.response.start" and not recorded:
                recorded = True  # before the client hears the answer, so it never sees an unrecorded change
                await self._record(scope, message["status"], ts, bytes(body))
            await send(message)

        try:
            await self._app(scope, receiving, sending)
        finally:
            if not recorded:  # the app failed before answering
                await self._record(scope, 500, ts, bytes(body))

    async def _record(self, scope: Scope, status: int, ts: int, body: bytes) -> None:
        user = scope.get("state", {}).get("user")
        if user is None:
            return
        actor = user.name
        route = scope.get("route")
        detail: dict[str, Any] = {"status": status}
        if scope.get("query_string"):
            detail["query"] = scope["query_string"].decode("latin-1")
        outcome = "ok" if status < 400 else "refused" if status < 500 else "failed"
        action = f"{scope['method']} {getattr(route, 'path', scope['path'])}"
        concerns = await self._concerns(scope.get("path_params") or {}, action, body)
        try:
            await self._ops.audit.add(
                ts=ts,
                actor=actor,
                source=(scope.get("client") or ("",))[0],
                action=action,
                target=scope["path"],
                detail=detail,
                outcome=outcome,
                device=concerns.device,
                site_wide=concerns.site_wide,
            )
        except Exception:
            log.exception("audit log: cannot record %s %s by %s", scope["method"], scope["path"], actor)

    async def _concerns(self, params: Mapping[str, Any], action: str, body: bytes) -> Concerns:
        """Whose building the request concerns, from its path, the record the path names, or its
        body. A lookup that fails leaves the entry to the whole site's managers: the entry itself
        must still be written."""
        device = params.get("device_id", params.get("device"))
        if isinstance(device, str):
            return Concerns(device)
        for name in RECORD_IDS:
            if name in params:
                record = _record_id(params[name])
                try:
                    return Concerns() if record is None else Concerns.of(await self._device_of(name, record))
                except NotFound:
                    return Concerns()
                except Exception as exc:
                    log.warning("audit log: cannot tell whose building %s %s concerns: %s", action, dict(params), exc)
                    return Concerns()
        return _named_in(body, action)

    async def _device_of(self, name: str, record: int) -> str | None:
        """The device of the alarm, task or plan instance named by a path parameter; NotFound if
        there is no such record."""
        if name == "alarm_id":
            return (await self._ops.alarms.get_alarm(record)).device
        if name == "task_id":
            return (await self._tasks.get(record, now_ns())).device
        return (await self._plans.get(record, now_ns())).device


def _record_id(value: object) -> int | None:
    """A path's record id, if it is one a store can hold."""
    if isinstance(value, str) and value.isdecimal() and 1 <= int(value) <= MAX_ID:
        return int(value)
    return None


def _named_in(body: bytes, action: str) -> Concerns:
    """The device a JSON object body names (a task made by hand, a simulated fault); a body that
    names none makes a site-wide record for the actions in SITE_WIDE_WITHOUT_DEVICE."""
    try:
        document = json.loads(body) if len(body) <= BODY_KEPT else None  # cut short: what it names is unknown
    except (ValueError, RecursionError):  # not JSON, or nested beyond what the parser follows
        document = None
    if not isinstance(document, dict):
        return Concerns()
    device = document.get("device")
    if isinstance(device, str):
        return Concerns(device)
    return Concerns(site_wide=device is None and action in SITE_WIDE_WITHOUT_DEVICE)
