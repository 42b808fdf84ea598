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

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from api.context import ApiContext
from api.deps import Ctx, Viewer
from facility.bus import Event

KEEPALIVE_S = 15.0  # a comment line this often keeps proxies from closing an idle stream
QUEUE_LIMIT = 5_000  # events a client may fall behind by before it is cut off and must resume


FRAMES_KEPT = 1_000  # events whose text is kept for the next client to send them


class Frames:
    """The text of the latest events, written once however many desks follow: one per app, kept
    on `app.state.frames`. A `reset` takes the id of the last event, so the id alone does not name
    an event: the key is (id, kind)."""

    def __init__(self) -> None:
        self._texts: dict[tuple[int, str], str] = {}

    def of(self, event: Event, ctx: ApiContext) -> str:
        key = (event.id, event.kind)
        text = self._texts.get(key)
        if text is None:
            shown = ctx.placed(event.data) if event.data.get("device") is not None else event.data
            data = json.dumps(shown, ensure_ascii=False, separators=(",", ":"))
            text = self._texts[key] = f"id: {event.id}\nevent: {event.kind}\ndata: {data}\n\n"
            if len(self._texts) > FRAMES_KEPT:
                del self._texts[next(iter(self._texts))]  # the oldest written
        return text


async def events(ctx: ApiContext, frames: Frames, after: int | None, visible: set[str] | None) -> AsyncIterator[str]:
    """The stream's text: what was missed since `after`, then each event as it comes, of the
    devices `visible` (None: all) and of none; a comment line when there is nothing to say."""
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
                yield frames.of(event, ctx)


router = APIRouter(tags=["events"])


@router.get("/stream", response_class=StreamingResponse)
async def stream(
    ctx: Ctx,
    request: Request,
    user: Viewer,
    last_event_id: Annotated[int | None, Header(description="the last event id received")] = None,
    resume_after: Annotated[int | None, Query(alias="last_event_id", description="as the header")] = None,
) -> StreamingResponse:
    """`text/event-stream` of `alarm`, `task`, `plan`, `device`, `flood`, `escalation` and
    `reset` events, each with an increasing numeric `id`."""
    after = last_event_id if last_event_id is not None else resume_after
    return StreamingResponse(
        events(ctx, request.app.state.frames, after, ctx.visible(user)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
