"""The site, and its devices with live values, units, quality and age; one point's history for a
trend chart; taking a device out of service for maintenance."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import Field

from api import schemas
from api.auth import Role, TokenAuth, User
from api.body import Body, query_error
from api.context import ApiContext, source_of
from facility.model import now_ns
from facility.site import Device
from facility.store.live import shown_quality
from facility.store.ops import ActionRefused
from facility.store.tasks import Bilingual
from facility.store.telemetry import HistoryUnavailable
from rules.tasks import name_pair

DAY_NS = 86_400 * 1_000_000_000
MAX_RANGE_NS = 400 * DAY_NS  # a year and a bit: beyond that a chart says nothing a report does not
STORE_FAILED = "the telemetry store could not give the history; `detail` names the store and says why"


def _text(pair: Bilingual) -> dict[str, str]:
    return {"zh": pair.zh, "en": pair.en}


class OutOfService(Body):
    reason: str = Field(min_length=1, max_length=500, description="what is being done to it")


def router(ctx: ApiContext, auth: TokenAuth) -> APIRouter:
    r = APIRouter(tags=["devices"])

    def board(device: Device, now: int, maintenance: dict[str, dict[str, Any]]) -> dict[str, Any]:
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

    @r.get("/site", response_model=schemas.SiteInfo)
    async def site(user: User = Depends(auth.require(Role.VIEWER))) -> dict[str, Any]:
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

    @r.get("/devices", response_model=list[schemas.Device])
    async def devices(
        user: User = Depends(auth.require(Role.VIEWER)),
        building: Annotated[list[str], Query()] = [],  # noqa: B006 (FastAPI copies query defaults)
        system: Annotated[list[str], Query()] = [],  # noqa: B006
    ) -> list[dict[str, Any]]:
        """Every device the user may see, by building and system if asked, with live values."""
        shown = ctx.chosen(user, building, system)
        maintenance = await ctx.ops.out_of_service()
        now = now_ns()  # after the await: readings that came in meanwhile are not from the future
        return [board(d, now, maintenance) for d in ctx.site.devices if shown is None or d.id in shown]

    @r.get("/devices/{device_id}", response_model=schemas.Device)
    async def device(device_id: str, user: User = Depends(auth.require(Role.VIEWER))) -> dict[str, Any]:
        found, maintenance = ctx.device_for(user, device_id), await ctx.ops.out_of_service()
        return board(found, now_ns(), maintenance)

    @r.get(
        "/devices/{device_id}/points/{point}/history",
        response_model=schemas.History,
        responses={502: {"model": schemas.Error, "description": STORE_FAILED}},
    )
    async def history(
        device_id: str,
        point: str,
        user: User = Depends(auth.require(Role.VIEWER)),
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
            raise HTTPException(404, f"{device_id} has no point {point!r}")
        end = now_ns() if until is None else ctx.ns_of(until, "until")
        start = end - DAY_NS if since is None else ctx.ns_of(since, "since")
        if start >= end:
            raise query_error("since", "since must be before until")
        if end - start > MAX_RANGE_NS:
            raise query_error("since", f"a range of at most {MAX_RANGE_NS // DAY_NS} days")
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

    @r.put("/devices/{device_id}/out-of-service", response_model=schemas.ServiceChange)
    async def take_out(
        device_id: str, body: OutOfService, request: Request, user: User = Depends(auth.require(Role.ENGINEER))
    ) -> dict[str, Any]:
        """Take a device out of service for maintenance: its alarms are kept, flagged, and not put in
        front of duty staff until it is back."""
        return await set_service(device_id, True, body.reason, request, user)

    @r.delete("/devices/{device_id}/out-of-service", response_model=schemas.ServiceChange)
    async def put_back(
        device_id: str, request: Request, user: User = Depends(auth.require(Role.ENGINEER))
    ) -> dict[str, Any]:
        return await set_service(device_id, False, "", request, user)

    async def set_service(device_id: str, on: bool, reason: str, request: Request, user: User) -> dict[str, Any]:
        ctx.device_for(user, device_id)
        try:
            changed = await ctx.rules.alarms.set_out_of_service(device_id, on, user.name, source_of(request), reason)
        except ActionRefused as exc:
            raise HTTPException(409, str(exc)) from None
        return {"device": device_id, "out_of_service": on, "alarms": [ctx.placed(a) for a in changed]}

    return r
