"""Server-sent events: every alarm and device change as it happens."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from api.context import ApiContext

KEEPALIVE_S = 15.0  # a comment line this often keeps proxies from closing an idle stream


def router(ctx: ApiContext) -> APIRouter:
    r = APIRouter(tags=["events"])

    @r.get("/stream", response_class=StreamingResponse)
    async def stream() -> StreamingResponse:
        """`text/event-stream` of `alarm` and `device` events, each with a numbered `id`."""

        async def events() -> AsyncIterator[str]:
            with ctx.bus.subscribe() as queue:
                yield ": connected\n\n"
                while True:
                    try:
                        event = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                    except TimeoutError:
                        yield ": keepalive\n\n"
                        continue
                    data = json.dumps(event.data, ensure_ascii=False, separators=(",", ":"))
                    yield f"id: {event.id}\nevent: {event.kind}\ndata: {data}\n\n"

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return r
