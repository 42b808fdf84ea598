"""Who is asking, and the audit log of every change."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from api import schemas
from api.deps import Ctx, Manager, Viewer
from facility.records import AuditEntry

router = APIRouter(tags=["access"])


@router.get("/me", response_model=schemas.Me)
async def me(user: Viewer) -> dict[str, Any]:
    """The user the token belongs to: the desk shows only the actions their role allows."""
    return {
        "name": user.name,
        "role": user.role.name.lower(),
        "buildings": sorted(user.buildings) if user.buildings is not None else None,
        "estates": sorted(user.sites) if user.sites is not None else None,
    }


@router.get("/audit", response_model=list[AuditEntry])  # the store's record is the answer: one shape, not two
async def audit(ctx: Ctx, user: Manager, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[AuditEntry]:
    """The latest changes asked for through the API, newest first: who, when, from where, what,
    and how it ended. A manager limited to buildings reads the changes to their buildings'
    devices, alarms, tasks and plans, and to site-wide tasks; of other buildings, nothing."""
    return await ctx.ops.audit.entries(limit, ctx.visible(user))
