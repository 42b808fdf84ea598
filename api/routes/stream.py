"""Server-sent events: every alarm, task, plan and device change as it happens, resumable.

A client that reconnects sends the last id it saw (the `Last-Event-ID` header, or `last_event_id`
for clients that cannot set headers) and first gets every event it missed, or a `reset` event when
they are no longer kept: then it reloads what it shows. A client too slow to keep up is cut off
rather than let its queue grow without end; it reconnects and resumes the same way.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import StreamingResponse

from api.auth import Role, TokenAuth, User
from api.context import ApiContext
from facility.bus import Event

KEEPALIVE_S = 15.0  # a comment line this often keeps proxies from closing an idle stream
QUEUE_LIMIT = 5_000  # events a client may fall behind by before it is cut off and must resume


FRAMES_KEPT = 1_000  # events whose text is kept for the next client to send them


def router(ctx: ApiContext, auth: TokenAuth) -> APIRouter:
    r = APIRouter(tags=["events"])
    # (id, kind) -> the event's text, written once however many desks follow; a `reset` takes the
    # id of the last event, so the id alone does not name an event.
    frames: dict[tuple[int, str], str] = {}

    def frame(event: Event) -> str:
        key = (event.id, event.kind)
        text = frames.get(key)
        if text is None:
            shown = ctx.placed(event.data) if event.data.get("device") is not None else event.data
            data = json.dumps(shown, ensure_ascii=False, separators=(",", ":"))
            text = frames[key] = f"id: {event.id}\nevent: {event.kind}\ndata: {data}\n\n"
            if len(frames) > FRAMES_KEPT:
                del frames[next(iter(frames))]  # the oldest written
        return text

    @r.get("/stream", response_class=StreamingResponse)
    async def stream(
        user: User = Depends(auth.require(Role.VIEWER)),
        last_event_id: Annotated[int | None, Header(description="the last event id received")] = None,
        resume_after: Annotated[int | None, Query(alias="last_event_id", description="as the header")] = None,
    ) -> StreamingResponse:
        """`text/event-stream` of `alarm`, `task`, `plan`, `device`, `flood`, `escalation` and
        `reset` events, each with an increasing numeric `id`."""
        after = last_event_id if last_event_id is not None else resume_after
        visible = ctx.visible(user)

        async def events() -> AsyncIterator[str]:
            with ctx.bus.subscribe(after, QUEUE_LIMIT) as queue:
                yield ": connected\n\n"
                while True:
                    if queue.empty() and ctx.bus.cut_off(queue):
                        return
                    try:
                        event = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                    except TimeoutError:
                        yield ": keepalive\n\n"
                        continue
                    device = event.data.get("device")
                    if visible is None or device is None or device in visible:
                        yield frame(event)

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return r
