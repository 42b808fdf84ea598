"""The FastAPI application: /healthz and /readyz, /metrics, the /api/v1 routes, and the duty-desk
page at /."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from api import health, metrics
from api.audit import AuditChanges
from api.auth import Role, TokenAuth, User
from api.context import ApiContext
from api.edge import Edge
from api.routes import access, alarms, dead_letters, devices, equipment, plans, reports, rules, stream, tasks, writes
from api.schemas import ERRORS
from api.unavailable import ops_unavailable
from facility.store.ops import OpsUnavailable

DESK_DIR = Path(__file__).parent / "desk"
DOCS_DIR = Path(__file__).parent / "apidocs"
SWAGGER_UI_DIR = Path(str(resources.files("fastapi_swagger") / "resources"))  # swagger-ui-bundle.js, swagger-ui.css
ROUTES = (access, alarms, devices, equipment, tasks, plans, rules, reports, stream, writes, dead_letters)


async def validation_failed(_: Request, exc: Exception) -> Response:
    """FastAPI's 422 in its own shape, written as ASCII JSON: the input it echoes may hold text that
    is not valid UTF-8 (a lone surrogate), which must come back as an error, not a crash."""
    assert isinstance(exc, RequestValidationError)
    body = json.dumps({"detail": jsonable_encoder(exc.errors())}, ensure_ascii=True, default=str)
    return Response(body, status_code=422, media_type="application/json")


# A FastAPI dependency giving the ids of the devices the asking user may see (None: every device).
VisibleDevices = Callable[..., Awaitable[set[str] | None]]
# A router built for that dependency, so that it shows each user only their buildings' devices.
ScopedRouter = Callable[[VisibleDevices], APIRouter]


def create_app(ctx: ApiContext, auth: TokenAuth, extra: dict[str, ScopedRouter] | None = None) -> FastAPI:
    """The app for one site. `extra` mounts more routers by prefix (the simulators' /sim), each
    built for the building limit of the asking user, as every other route is."""
    app = FastAPI(
        title="Facility monitoring",
        version="1",
        description="Alarms, tasks, emergency plans, devices and reports of one estate. Every route but "
        "/healthz and /readyz needs `Authorization: Bearer <token>`; see docs/api.md.",
        docs_url=None,  # served below from the package's own files, under a policy of its own
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    guarded = [Depends(auth)]
    app.include_router(health.router(ctx, auth))  # no token: load balancers and probes ask
    app.include_router(metrics.router(ctx, auth))  # a token: any user, viewer and up
    for module in ROUTES:
        app.include_router(module.router(ctx, auth), prefix="/api/v1", dependencies=guarded, responses=ERRORS)

    async def visible(user: User = Depends(auth)) -> set[str] | None:
        """The devices of the asking user's buildings, as the /api/v1 routes limit them."""
        return ctx.visible(user)

    for prefix, build in (extra or {}).items():  # the simulators: breaking the plant is for engineers
        app.include_router(build(visible), prefix=prefix, dependencies=[Depends(auth.require(Role.ENGINEER))])

    @app.get("/", include_in_schema=False)
    async def desk() -> FileResponse:
        return FileResponse(DESK_DIR / "index.html")

    @app.get("/api/docs", include_in_schema=False)
    async def docs() -> FileResponse:
        return FileResponse(DOCS_DIR / "index.html")

    @app.get("/api/docs/init.js", include_in_schema=False)
    async def docs_init() -> FileResponse:
        return FileResponse(DOCS_DIR / "init.js")

    app.mount("/api/docs/ui", StaticFiles(directory=SWAGGER_UI_DIR), name="docs-ui")
    app.mount("/desk", StaticFiles(directory=DESK_DIR), name="desk")
    app.add_exception_handler(RequestValidationError, validation_failed)
    app.add_exception_handler(OpsUnavailable, ops_unavailable)  # 503 naming the ops store, not a 500
    app.add_middleware(Edge, auth=auth, settings=ctx.site.api)  # token and body size before anything reads the body
    app.add_middleware(AuditChanges, ops=ctx.ops)  # outermost: it records what the edge refused a known user too
    return app
