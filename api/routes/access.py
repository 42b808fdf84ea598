"""Who is asking, and the audit log of every change."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from api import schemas
from api.auth import Role, TokenAuth, User
from api.context import ApiContext


def router(ctx: ApiContext, auth: TokenAuth) -> APIRouter:
    r = APIRouter(tags=["access"])

    @r.get("/me", response_model=schemas.Me)
    async def me(user: User = Depends(auth.require(Role.VIEWER))) -> dict[str, Any]:
        """The user the token belongs to: the desk shows only the actions their role allows."""
        return {
            "name": user.name,
            "role": user.role.name.lower(),
            "buildings": sorted(user.buildings) if user.buildings is not None else None,
        }

    @r.get("/audit", response_model=list[schemas.AuditEntry])
    async def audit(
        user: User = Depends(auth.require(Role.MANAGER)), limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> list[dict[str, Any]]:
        """The latest changes asked for through the API, newest first: who, when, from where, what,
        and how it ended. A manager limited to buildings reads the changes to their buildings'
        devices, alarms, tasks and plans, and to site-wide tasks; of other buildings, nothing."""
        return [asdict(entry) for entry in await ctx.ops.audit_log(limit, ctx.visible(user))]

    return r
