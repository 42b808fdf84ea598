"""The site, and its devices with live values, units, quality and age; one point's history for a
trend chart; taking a device out of service for maintenance."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import Field

from api import schemas
from api.auth import User
from api.body import Body
from api.context import ApiContext, source_of
from api.deps import Ctx, Engineer, Viewer
from facility.errors import Invalid, NotFound
from facility.model import now_ns
from facility.site import Device
from facility.store.live import shown_quality
from facility.store.telemetry import HistoryUnavailable
from facility.vocabulary import Text
from rules.tasks import name_pair

DAY_NS = 86_400 * 1_000_000_000
MAX_RANGE_NS = 400 * DAY_NS  # a year and a bit: beyond that a chart says nothing a report does not
STORE_FAILED = "the telemetry store could not give the history; `detail` names the store and says why"


def _text(pair: Text) -> dict[str, str]:
    return {"zh": pair.zh, "en": pair.en}


class OutOfService(Body):
    reason: str = Field(min_length=1, max_length=500, description="what is being done to it")


def board(ctx: ApiContext, device: Device, now: int, maintenance: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A device as the desk's board shows it: where it is, whether it answers, and each point's
    live value with its unit, quality and age."""
    profile = ctx.site.profile_of(device)
    latest = ctx.live.of(device.id)
    points = {}
    for name, spec in profile.points.items():
        reading = latest.get(name)
        points[name] = {
            "unit": spec.unit,
            "label": spec.label,
            "value_labels": spec.value_words,
            "value": reading.value if reading else None,
            "quality": shown_quality(reading, device.interval, now).value if reading else "no_data",
            "age_s": round((now - reading.ts) / 1e9, 3) if reading else None,
        }
    online, last_seen = ctx.live.status(device.id)
    return {
        "id": device.id,
        "name": device.name,
        "type": device.type or profile.type,
        "system": profile.system,
        "location": device.location.model_dump(),
        "vendor": device.vendor,
        "online": online,
        "last_seen": last_seen,
        "out_of_service": maintenance.get(device.id),
        "points": points,
    }


def history_range(ctx: ApiContext, since: datetime | None, until: datetime | None) -> tuple[int, int]:
    """The range a trend asks for, in UTC ns: a day up to now by default, at most MAX_RANGE_NS."""
    end = now_ns() if until is None else ctx.ns_of(until, "until")
    start = end - DAY_NS if since is None else ctx.ns_of(since, "since")
    if start >= end:
        raise Invalid("since must be before until", field="since", where="query")
    if end - start > MAX_RANGE_NS:
        raise Invalid(f"a range of at most {MAX_RANGE_NS // DAY_NS} days", field="since", where="query")
    return start, end


router = APIRouter(tags=["devices"])


@router.get("/site", response_model=schemas.SiteInfo)
async def site(ctx: Ctx, user: Viewer) -> dict[str, Any]:
    """The estate: id, display name (`name` as the site file writes it, `title` in each
    language), the time zone the desk shows times in, the buildings and systems its devices are
    in (a limited user's buildings only), and the maintenance companies by id with their names."""
    info = ctx.site.site
    visible = ctx.visible(user)
    devices = [d for d in ctx.site.devices if visible is None or d.id in visible]
    return {
        "id": info.id,
        "name": info.name,
        "title": _text(name_pair(info.name or info.id)),
        "timezone": info.timezone,
        "buildings": sorted({d.location.building for d in devices if d.location.building}),
        "systems": sorted({ctx.site.system_of(d) for d in devices}),
        "vendors": [{"id": v.id, "name": _text(name_pair(v.name or v.id))} for v in ctx.site.vendors],
    }


@router.get("/devices", response_model=list[schemas.Device])
async def devices(
    ctx: Ctx,
    user: Viewer,
    building: Annotated[list[str], Query()] = [],  # noqa: B006 (FastAPI copies query defaults)
    system: Annotated[list[str], Query()] = [],  # noqa: B006
) -> list[dict[str, Any]]:
    """Every device the user may see, by building and system if asked, with live values."""
    shown = ctx.chosen(user, building, system)
    maintenance = await ctx.ops.alarms.out_of_service()
    now = now_ns()  # after the await: readings that came in meanwhile are not from the future
    return [board(ctx, d, now, maintenance) for d in ctx.site.devices if shown is None or d.id in shown]


@router.get("/devices/{device_id}", response_model=schemas.Device)
async def device(ctx: Ctx, device_id: str, user: Viewer) -> dict[str, Any]:
    found, maintenance = ctx.device_for(user, device_id), await ctx.ops.alarms.out_of_service()
    return board(ctx, found, now_ns(), maintenance)


@router.get(
    "/devices/{device_id}/points/{point}/history",
    response_model=schemas.History,
    responses={502: {"model": schemas.Error, "description": STORE_FAILED}},
)
async def history(
    ctx: Ctx,
    device_id: str,
    point: str,
    user: Viewer,
    since: Annotated[datetime | None, Query(description="ISO 8601; default: a day before `until`")] = None,
    until: Annotated[datetime | None, Query(description="ISO 8601; default: now")] = None,
    max_samples: Annotated[int, Query(ge=10, le=5000, description="at most this many samples")] = 500,
) -> dict[str, Any]:
    """A point's values over a range, as min/mean/max per bucket when raw values would be more
    than `max_samples` (a chart cannot draw more points than it has pixels). 502 when the
    telemetry store cannot give them: the answer names the store and says why."""
    found = ctx.device_for(user, device_id)
    spec = ctx.site.profile_of(found).points.get(point)
    if spec is None:
        raise NotFound(f"{device_id} has no point {point!r}")
    start, end = history_range(ctx, since, until)
    # Readings expected in the range at the device's interval decide whether to downsample.
    expected = (end - start) / 1e9 / max(found.interval, 1e-3)
    bucket = None if expected <= max_samples else (end - start) / 1e9 / max_samples
    try:
        samples = await asyncio.to_thread(ctx.history, device_id, point, start, end, bucket)
        if bucket is None and len(samples) > max_samples:  # the device sent faster than its interval says
            bucket = (end - start) / 1e9 / max_samples
            samples = await asyncio.to_thread(ctx.history, device_id, point, start, end, bucket)
    except HistoryUnavailable as exc:
        raise HTTPException(502, str(exc)) from None
    return {
        "device": device_id,
        "point": point,
        "unit": spec.unit,
        "since": start,
        "until": end,
        "bucket_s": bucket,
        "samples": [{"ts": s.ts, "mean": s.mean, "min": s.min, "max": s.max, "count": s.count} for s in samples],
    }


@router.put("/devices/{device_id}/out-of-service", response_model=schemas.ServiceChange)
async def take_out(ctx: Ctx, device_id: str, body: OutOfService, request: Request, user: Engineer) -> dict[str, Any]:
    """Take a device out of service for maintenance: its alarms are kept, flagged, and not put in
    front of duty staff until it is back."""
    return await set_service(ctx, device_id, True, body.reason, request, user)


@router.delete("/devices/{device_id}/out-of-service", response_model=schemas.ServiceChange)
async def put_back(ctx: Ctx, device_id: str, request: Request, user: Engineer) -> dict[str, Any]:
    return await set_service(ctx, device_id, False, "", request, user)


async def set_service(
    ctx: ApiContext, device_id: str, on: bool, reason: str, request: Request, user: User
) -> dict[str, Any]:
    """Out of service or back: the device must be the user's to see; the store refuses a change
    that is already so (409)."""
    ctx.device_for(user, device_id)
    changed = await ctx.rules.alarms.set_out_of_service(device_id, on, user.name, source_of(request), reason)
    return {"device": device_id, "out_of_service": on, "alarms": [ctx.placed(a) for a in changed]}
