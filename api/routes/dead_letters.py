"""Dead letters: the input the system could not use (an MQTT payload that is not JSON, a Modbus
value that does not decode, a reading the telemetry store refused, a webhook that failed), for the
engineers who connect equipment and must see why it is not heard, without opening the database.

A letter names a device by its key: an MQTT letter by the topic it came on (a device's data or
status topic), every other source by a key that starts `device/` (`pump-1/outlet_pressure`). A
user limited to buildings sees the letters of their buildings' devices only. Letters that name no
device of the site (a topic no device has, a webhook's failed delivery) are for users of the
whole site: their payload may carry anything, a webhook's an alarm of any building, so a limited
user is shown nothing of them, as the audit log keeps entries of no building for the whole site.

Which letters name which device, and the paged query, are the store's (facility.store.dead_letters):
`facility dead-letters` reads them the same way.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import Field

from api import schemas
from api.auth import User
from api.body import MAX_ID
from api.context import ApiContext
from api.deps import Ctx, Engineer
from api.download import LIST_FILE, ListFormatQuery, ListLangQuery, list_file
from facility.model import now_ns
from facility.store.dead_letters import LetterFilter, LetterKeys, Source, StoredLetter, letter_page
from reports.lists import dead_letter_list

MAX_PAGE = 500
SourceQuery = Annotated[list[Source], Query(description="only of these sources (repeat for more)")]
SinceQuery = Annotated[datetime | None, Query(description="met from (ISO 8601; no offset: site time)")]


class DeadLetterAnswer(schemas.Answer):
    id: int = Field(description="increasing: a later letter has a larger id")
    ts: int = Field(description="when it was met, UTC ns")
    source: str = Field(description="mqtt, modbus, telemetry or webhook")
    key: str = Field(description="what it came from: the MQTT topic, `device/point`, the webhook's name")
    device: str | None = Field(description="the device of the site the key names; null: none")
    reason: str = Field(description="why it could not be used")
    payload: str = Field(description="what came, cut to stores.dead_letter_payload_kb (the reason then says so)")


class DeadLetterPage(schemas.Answer):
    items: list[DeadLetterAnswer] = Field(description="newest first")
    total: int = Field(description="letters matching the filters, on every page")
    limit: int
    offset: int


def answer_of(letter: StoredLetter, keys: LetterKeys) -> DeadLetterAnswer:
    """The letter as the API and `facility dead-letters --json` show it: with the device it names."""
    device = keys.device_of(letter.source, letter.key)
    return DeadLetterAnswer(device=device, **asdict(letter))


def chosen_by(
    ctx: ApiContext, keys: LetterKeys, user: User, source: list[Source], since: datetime | None
) -> LetterFilter:
    """The letters a list asks for, held to the user's buildings."""
    visible = ctx.visible(user)
    return LetterFilter(
        sources=source,
        since=None if since is None else ctx.ns_of(since, "since"),
        scope=None if visible is None else keys.naming(visible),
    )


router = APIRouter(tags=["dead letters"])


@router.get("/dead-letters", response_model=DeadLetterPage)
async def dead_letters(
    ctx: Ctx,
    user: Engineer,
    source: SourceQuery = [],  # noqa: B006 (FastAPI copies query defaults)
    since: SinceQuery = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> DeadLetterPage:
    """The input the system could not use, newest first: where it came from, why it was refused
    and what it was. A user limited to buildings sees only the letters of their buildings'
    devices; letters that name no device of the site are for users of the whole site."""
    keys = LetterKeys(ctx.site)
    letters, total = await letter_page(ctx.ops, chosen_by(ctx, keys, user, source, since), limit, offset)
    items = [answer_of(d, keys) for d in letters]
    return DeadLetterPage(items=items, total=total, limit=limit, offset=offset)


@router.get("/dead-letters/export", response_class=Response, responses=LIST_FILE)
async def export_dead_letters(
    ctx: Ctx,
    user: Engineer,
    source: SourceQuery = [],  # noqa: B006
    since: SinceQuery = None,
    fmt: ListFormatQuery = "xlsx",
    lang: ListLangQuery = "zh",
) -> Response:
    """Every letter the list's filters match, newest first, as an Excel workbook or a CSV file
    (at most reports.lists.MAX_ROWS; a file cut there says how many matched), under the same
    building limit as the list."""
    visible = ctx.visible(user)
    chosen = chosen_by(ctx, LetterKeys(ctx.site), user, source, since)
    return list_file(await dead_letter_list(ctx.site, ctx.ops, visible, chosen, now_ns()), fmt, lang)
