"""The FastAPI application: /healthz and /readyz, /metrics, the /api/v1 routes, and the duty-desk
page at /."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from api import health, metrics
from api.audit import AuditChanges
from api.auth import Role, TokenAuth
from api.context import ApiContext
from api.deps import current_user, require
from api.edge import Edge
from api.errors import handle_errors
from api.routes import (
    access,
    alarms,
    dead_letters,
    devices,
    equipment,
    estates,
    plans,
    reports,
    rules,
    stream,
    tasks,
    words,
    writes,
)
from api.schemas import ERRORS
from facility.readiness import Readiness
from facility.site import Site

DESK_DIR = Path(__file__).parent / "desk"
DOCS_DIR = Path(__file__).parent / "apidocs"
SWAGGER_UI_DIR = Path(str(resources.files("fastapi_swagger") / "resources"))  # swagger-ui-bundle.js, swagger-ui.css
ROUTES = (
    access,
    alarms,
    devices,
    equipment,
    estates,
    tasks,
    plans,
    rules,
    reports,
    stream,
    writes,
    dead_letters,
    words,
)


def create_probes(site: Site, readiness: Readiness, auth: TokenAuth) -> FastAPI:
    """The app of a process that runs no API part (an estate's gateway, a writer, a rule worker):
    /healthz and /readyz for its supervisor and load balancer, /metrics for Prometheus."""
    app = FastAPI(title="Facility monitoring: probes", docs_url=None, redoc_url=None, openapi_url=None)
    _probes(app, site, readiness, auth)
    handle_errors(app)
    app.add_middleware(Edge, auth=auth, settings=site.api)  # the token before anything else, as everywhere
    return app


def _probes(app: FastAPI, site: Site, readiness: Readiness, auth: TokenAuth) -> None:
    """What every app serves: the probes without a token, the metrics with one."""
    app.state.site_id, app.state.readiness, app.state.auth = site.site.id, readiness, auth
    app.state.metrics = metrics.registry_of(readiness)
    app.include_router(health.router)  # no token: load balancers and probes ask
    app.include_router(metrics.router)  # a token: any user, viewer and up


def create_app(ctx: ApiContext, auth: TokenAuth, extra: Mapping[str, APIRouter] | None = None) -> FastAPI:
    """The app for one site. `extra` mounts more routers by prefix (the simulators' /sim, which
    take the asking user's building limit from api.deps.visible_devices), for engineers only."""
    app = FastAPI(
        title="Facility monitoring",
        version="1",
        description="Alarms, tasks, emergency plans, devices and reports of one estate. Every route but "
        "/healthz and /readyz needs `Authorization: Bearer <token>`; see docs/api.md.",
        docs_url=None,  # served below from the package's own files, under a policy of its own
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.ctx = ctx  # what api.deps gives the routes
    _probes(app, ctx.site, ctx.readiness, auth)
    app.state.frames = stream.Frames()
    guarded = [Depends(current_user)]
    for module in ROUTES:
        app.include_router(module.router, prefix="/api/v1", dependencies=guarded, responses=ERRORS)
    for prefix, router in (extra or {}).items():  # the simulators: breaking the plant is for engineers
        app.include_router(router, prefix=prefix, dependencies=[Depends(require(Role.ENGINEER))])

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
    handle_errors(app)  # one handler per branch of facility.errors: routes raise, never map statuses
    app.add_middleware(Edge, auth=auth, settings=ctx.site.api)  # token and body size before anything reads the body
    app.add_middleware(AuditChanges, ops=ctx.ops)  # outermost: it records what the edge refused a known user too
    return app
