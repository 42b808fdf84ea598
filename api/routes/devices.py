"""Devices with their live values, units, quality and age."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.context import ApiContext
from facility.model import now_ns
from facility.store.live import shown_quality


def router(ctx: ApiContext) -> APIRouter:
    r = APIRouter(tags=["devices"])

    @r.get("/site")
    async def site() -> dict[str, str]:
        """The estate: id, display name, and the time zone the desk shows times in."""
        info = ctx.site.site
        return {"id": info.id, "name": info.name, "timezone": info.timezone}

    @r.get("/devices")
    async def devices() -> list[dict[str, Any]]:
        now = now_ns()
        out = []
        for device in ctx.site.devices:
            profile = ctx.site.profile_of(device)
            latest = ctx.live.of(device.id)
            points = {}
            for name, spec in profile.points.items():
                reading = latest.get(name)
                points[name] = {
                    "unit": spec.unit,
                    "label": spec.label,
                    "value": reading.value if reading else None,
                    "quality": shown_quality(reading, device.interval, now).value if reading else "no_data",
                    "age_s": round((now - reading.ts) / 1e9, 3) if reading else None,
                }
            online, last_seen = ctx.live.status(device.id)
            out.append(
                {
                    "id": device.id,
                    "name": device.name,
                    "type": device.type,
                    "location": device.location.model_dump(),
                    "online": online,
                    "last_seen": last_seen,
                    "points": points,
                }
            )
        return out

    return r
