"""The FastAPI application: /healthz, the /api/v1 routes, and the duty-desk page at /."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from api.auth import Role, TokenAuth
from api.context import ApiContext
from api.routes import alarms, devices, stream, writes

DESK_DIR = Path(__file__).parent / "desk"


def create_app(ctx: ApiContext, auth: TokenAuth, extra: dict[str, APIRouter] | None = None) -> FastAPI:
    """The app for one site. `extra` mounts more routers by prefix (the simulators' /sim)."""
    app = FastAPI(title="Facility monitoring", version="1", docs_url="/api/docs", openapi_url="/api/openapi.json")
    guarded = [Depends(auth)]

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Liveness; the only route that needs no token."""
        return {"status": "ok", "site": ctx.site.site.id}

    app.include_router(devices.router(ctx), prefix="/api/v1", dependencies=guarded)
    app.include_router(alarms.router(ctx, auth), prefix="/api/v1", dependencies=guarded)
    app.include_router(stream.router(ctx), prefix="/api/v1", dependencies=guarded)
    app.include_router(writes.router(ctx, auth), prefix="/api/v1", dependencies=guarded)
    for prefix, router in (extra or {}).items():  # the simulators: breaking the plant is for engineers
        app.include_router(router, prefix=prefix, dependencies=[Depends(auth.require(Role.ENGINEER))])

    @app.get("/", include_in_schema=False)
    async def desk() -> FileResponse:
        return FileResponse(DESK_DIR / "index.html")

    app.mount("/desk", StaticFiles(directory=DESK_DIR), name="desk")
    return app
