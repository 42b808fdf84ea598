"""The HTTP server (uvicorn) the API and the simulators' control API are served by."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Iterator

import uvicorn
from starlette.types import ASGIApp

from facility.aio import cancel_all
from facility.site import Api


def http_config(app: ASGIApp, host: str, port: int, api: Api) -> uvicorn.Config:
    """uvicorn for the API: no server banner, and X-Forwarded-For believed only from the site's
    trusted proxies (uvicorn's own default trusts loopback, which any local process is)."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=1,  # event streams never end by themselves: do not wait on them
        lifespan="off",
        server_header=False,
        proxy_headers=bool(api.trusted_proxies),
        forwarded_allow_ips=list(api.trusted_proxies),
    )


async def serve_until(config: uvicorn.Config, on_started: Callable[[str], None], stopping: asyncio.Event) -> None:
    """Serve until `stopping` is set; raise if the server could not listen (a port in use), for a
    service without its API would look started and answer nobody."""
    server = _Server(config, on_started)
    helper = asyncio.create_task(_stop_when(stopping, server))
    try:
        await server.serve()
    finally:
        await cancel_all([helper])
    if not server.started and not stopping.is_set():
        raise RuntimeError(f"the API could not listen on {config.host}:{config.port}")


async def _stop_when(stop: asyncio.Event, server: uvicorn.Server) -> None:
    """uvicorn stops on a flag it polls, not on an event: set the flag once `stop` is set."""
    await stop.wait()
    server.should_exit = True


class _Server(uvicorn.Server):
    """uvicorn's server, telling its URL once it listens (the port may have been 0), and leaving
    the signals to the runtime (`shutdown.signals`)."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[str], None]) -> None:
        super().__init__(config)
        self._on_started = on_started

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """No handlers of uvicorn's own: they would re-raise the signal and skip the drain."""
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            self._on_started(f"http://{host}:{port}")
