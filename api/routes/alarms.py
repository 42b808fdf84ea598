"""Alarms: list, detail, acknowledge."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request

from api.auth import Role, TokenAuth, User
from api.context import ApiContext


def router(ctx: ApiContext, auth: TokenAuth) -> APIRouter:
    r = APIRouter(tags=["alarms"])

    @r.get("/alarms")
    async def alarms(include_closed: bool = False) -> list[dict[str, Any]]:
        """Open alarms (active, or returned to normal but not yet acknowledged), newest first."""
        return await ctx.ops.list_alarms(include_closed=include_closed)

    @r.get("/alarms/{alarm_id}")
    async def alarm(alarm_id: int) -> dict[str, Any]:
        found = await ctx.ops.get_alarm(alarm_id)
        if found is None:
            raise HTTPException(404, f"no alarm {alarm_id}")
        return found

    @r.post("/alarms/{alarm_id}/ack")
    async def acknowledge(
        alarm_id: int, request: Request, user: User = Depends(auth.require(Role.DUTY))
    ) -> dict[str, Any]:
        source = request.client.host if request.client else ""
        found = await ctx.alarms.acknowledge(alarm_id, user.name, source)
        if found is None:
            raise HTTPException(404, f"no alarm {alarm_id}")
        return found

    return r
