"""Liveness and readiness: `GET /healthz` (the process answers) and `GET /readyz` (each part's state).

Both need no token, so that a load balancer or Kubernetes probe can ask, and so both reveal
nothing secret: part names and states, and details with any credentials in them blanked.

What /readyz answers, and why a degraded service is still 200:

- `ok` (200): every part is up.
- `degraded` (200): some part is degraded or down, but the process still does useful work. With
  the ops store down it still raises alarms (journaled) and shows them on the desk, not yet
  recorded; with the telemetry store down it spools readings to disk. Taking such a replica out of
  a load balancer, often the only one, would leave duty staff with nothing, so the probe keeps it
  in service and the desk banner and the Prometheus alerts tell people instead.
- `down` (503): every part the process depends on is down (stores, spool, broker, buses, rule
  outcomes; the event loop is the process itself and is not counted). A replica cut off from
  everything, as when its node lost the network, serves nothing another replica could not serve
  better, so it leaves the load balancer until something answers again.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from facility.readiness import PartState, Readiness, State

Status = Literal["ok", "degraded", "down"]
OWN_KINDS = frozenset({"event_loop"})  # parts that are the process itself, not what it depends on

_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")  # postgresql://user:password@host -> postgresql://***@host
_SECRET = re.compile(r"(?i)\b(password|passwd|pwd|secret|token)(\s*[=:]\s*)\S+")  # libpq DSNs, key=value


def unsecret(text: str) -> str:
    """`text` with credentials blanked: a reporter's detail is often an exception's message, and a
    driver may put the URL it was given, password and all, into one."""
    return _SECRET.sub(r"\1\2***", _USERINFO.sub("***@", text))


class PartView(BaseModel):
    name: str = Field(description='what an operator calls it: "ops store", "modbus 10.0.0.5:502"')
    kind: str = Field(description="telemetry_store, spool, ops_store, broker, modbus_bus, outcomes, event_loop")
    state: State
    last_success_age_s: float | None = Field(description="seconds since its last success; null: none yet")
    detail: str = Field(description="why it is not up, in a sentence; may be empty")


class ReadinessView(BaseModel):
    status: Status
    parts: list[PartView]


def overall(parts: Sequence[PartState]) -> Status:
    """ok, degraded or down for the parts, as the module's docstring explains."""
    if all(p.state is State.UP for p in parts):
        return "ok"
    needed = [p for p in parts if p.kind not in OWN_KINDS]
    if needed and all(p.state is State.DOWN for p in needed):
        return "down"
    return "degraded"


def view(parts: Sequence[PartState], now_ns: int) -> ReadinessView:
    return ReadinessView(
        status=overall(parts),
        parts=[
            PartView(
                name=unsecret(p.name),
                kind=p.kind,
                state=p.state,
                last_success_age_s=None
                if p.last_success_ns is None
                else round(max(0, now_ns - p.last_success_ns) / 1e9, 3),
                detail=unsecret(p.detail),
            )
            for p in parts
        ],
    )


router = APIRouter(tags=["health"])


def _readiness(request: Request) -> Readiness:
    """The readiness of the app's process: every app has one, the probes-only app of a process
    without the API part (api.app.create_probes) included."""
    readiness: Readiness = request.app.state.readiness
    return readiness


Parts = Annotated[Readiness, Depends(_readiness)]


@router.get("/healthz")
async def healthz(request: Request) -> dict[str, str]:
    """Liveness: the process answers. It says nothing of the parts; that is /readyz."""
    return {"status": "ok", "site": request.app.state.site_id}


@router.get(
    "/readyz",
    response_model=ReadinessView,
    responses={503: {"model": ReadinessView, "description": "every part the process depends on is down"}},
)
async def readyz(readiness: Parts, response: Response) -> ReadinessView:
    """Readiness: each part (stores, spool, broker, Modbus buses, ...) with its state and the age
    of its last success. 200 while the process does useful work, `status` saying whether it
    is ok or degraded; 503 only when everything it depends on is down (see docs/operations.md)."""
    answer = view(readiness.parts(), time.time_ns())
    if answer.status == "down":
        response.status_code = 503
    return answer
