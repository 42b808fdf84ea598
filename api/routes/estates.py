"""The company view (指挥中心): every estate the user may reach, side by side, from the ops database
the estates share (facility.store.reads.estates). A user limited to buildings is refused: the
centre knows the buildings of its own estate only, so it could not limit the others'. Their
estates' desks (for the desk's estate switch) any user may list."""

from __future__ import annotations

from dataclasses import asdict
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException

from api import schemas
from api.deps import Ctx, Viewer
from facility.model import now_ns
from facility.store.reads import estates
from reports.communication import communication_rules
from reports.periods import local_date, month_bounds

router = APIRouter(tags=["estates"])


@router.get("/estates/desks", response_model=list[schemas.EstateDesk])
async def desks(ctx: Ctx, user: Viewer) -> list[schemas.EstateDesk]:
    """The estates the user may reach and their desks, for the desk's estate switch: the registry
    alone, no figures, so that every desk may ask it at login."""
    return [
        schemas.EstateDesk(site=e.site, name=e.name, desk_url=e.desk_url, here=e.site == ctx.ops.site)
        for e in await estates.estates(ctx.ops, user.sites)
    ]


@router.get("/estates", response_model=schemas.Estates)
async def company(ctx: Ctx, user: Viewer) -> schemas.Estates:
    """Open emergencies, unacknowledged alarms, overdue tasks, devices offline and out of service,
    and this month's alarms, mean time to acknowledge and deadlines kept, per estate."""
    if user.buildings is not None:
        raise HTTPException(403, f"the company view is for users of whole estates; {user.name} is limited to buildings")
    now, zone = now_ns(), ZoneInfo(ctx.site.site.timezone)
    today = local_date(now, zone)
    month = month_bounds(today.year, today.month, zone)
    communication = communication_rules(ctx.rules.running.rules)
    items = []
    for estate in await estates.estates(ctx.ops, user.sites):
        found = await estates.figures(ctx.ops, estate, communication, month, now)
        items.append(schemas.Estate(**asdict(found), here=estate.site == ctx.ops.site))
    return schemas.Estates(month=f"{today.year}-{today.month:02d}", items=items)
