"""The site's simulators: beside the service (`facility demo`, `run --simulate`) or alone
(`facility sim run`), with their control API under /sim."""

from __future__ import annotations

from contextlib import AsyncExitStack

import uvicorn
from fastapi import Depends, FastAPI

from api.auth import TokenAuth
from api.deps import current_user
from api.edge import Edge
from api.errors import handle_errors
from facility.site import Site
from facility_app.server import http_config
from simulators import control
from simulators.control import Scope, Simulation, everything
from simulators.host import SimulatorHost
from simulators.scenarios import ScenarioPlayer, load_library


async def start_simulation(
    site: Site, stack: AsyncExitStack, scope: Scope, any_port: bool = False
) -> tuple[Simulation, Site]:
    """Start the site's simulators (stopped by `stack`); return what their control API acts on,
    showing each user the devices `scope` gives them, and the site with the ports they listen on."""
    host = SimulatorHost(site, any_port=any_port)
    player = ScenarioPlayer(host, load_library([site.path(p) for p in site.scenarios]))
    await host.start()
    stack.push_async_callback(host.stop)
    stack.push_async_callback(player.stop_all)
    return Simulation(host, player, scope), host.site


async def run_simulators(site: Site, host: str, port: int, token: str) -> None:
    """The site's simulators alone, with their control API under /sim, until SIGINT/SIGTERM."""
    async with AsyncExitStack() as stack:
        # The estate's app has the docs; this one serves /sim alone, behind the same edge.
        app = FastAPI(title="Facility simulators", docs_url=None, redoc_url=None, openapi_url=None)
        auth = TokenAuth({token: "sim"}, settings=site.api)
        app.state.simulation, _ = await start_simulation(site, stack, everything)  # its one token sees it all
        app.state.auth = auth  # what api.deps.current_user checks the token with
        app.include_router(control.router, prefix="/sim", dependencies=[Depends(current_user)])
        handle_errors(app)  # the routes raise facility.errors: answered as the estate's API answers them
        app.add_middleware(Edge, auth=auth, settings=site.api)
        await uvicorn.Server(http_config(app, host, port, site.api)).serve()
