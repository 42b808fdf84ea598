"""Dead letters: the input the system could not use (an MQTT payload that is not JSON, a Modbus
value that does not decode, a reading the telemetry store refused, a webhook that failed), for the
engineers who connect equipment and must see why it is not heard, without opening the database.

A letter names a device by its key: an MQTT letter by the topic it came on (a device's data or
status topic), every other source by a key that starts `device/` (`pump-1/outlet_pressure`). A
user limited to buildings sees the letters of their buildings' devices only. Letters that name no
device of the site (a topic no device has, a webhook's failed delivery) are for users of the
whole site: their payload may carry anything, a webhook's an alarm of any building, so a limited
user is shown nothing of them, as the audit log keeps entries of no building for the whole site.

The query is here because the ops store (facility/store/ops.py) offers only the newest letters
unfiltered; `letter_page` belongs beside `OpsStore.dead_letters` and moves there with its owner.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import Field
from sqlalchemy import ColumnElement, false, func, or_, select

from api import schemas
from api.auth import Role, TokenAuth, User
from api.body import MAX_ID
from api.context import ApiContext
from facility.site import Site
from facility.store.ops import DeadLetterRow, OpsStore

Source = Literal["mqtt", "modbus", "telemetry", "webhook"]  # who keeps letters: the gateway and the notifier
MAX_PAGE = 500


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


@dataclass(frozen=True)
class StoredLetter:
    """A dead letter as the ops store keeps it, with its id."""

    id: int
    ts: int
    source: str
    key: str
    reason: str
    payload: str


@dataclass(frozen=True)
class LetterFilter:
    """Which letters a page holds: of these sources (empty: any), met at `since` or later (None:
    any time), and matching `scope` (None: every letter; see LetterKeys.naming)."""

    sources: Collection[str] = ()
    since: int | None = None
    scope: ColumnElement[bool] | None = None


class LetterKeys:
    """Which device of a site a dead letter names, told by its source and key."""

    def __init__(self, site: Site) -> None:
        self._topics: dict[str, str] = {}  # data or status topic -> device
        for device in site.devices:
            if device.mqtt is not None:
                self._topics[device.mqtt.topic] = self._topics[device.mqtt.status] = device.id
        self._ids = {device.id for device in site.devices}

    def device_of(self, source: str, key: str) -> str | None:
        if source == "mqtt":
            return self._topics.get(key)
        device, slash, _ = key.partition("/")
        return device if slash and device in self._ids else None

    def naming(self, devices: Collection[str]) -> ColumnElement[bool]:
        """The SQL condition of the letters that name one of `devices` (as `device_of` tells)."""
        topics = sorted(topic for topic, device in self._topics.items() if device in devices)
        keyed = [DeadLetterRow.key.startswith(f"{device}/", autoescape=True) for device in sorted(devices)]
        mqtt = DeadLetterRow.source == "mqtt"
        return or_(mqtt & DeadLetterRow.key.in_(topics), ~mqtt & or_(false(), *keyed))


async def letter_page(ops: OpsStore, chosen: LetterFilter, limit: int, offset: int) -> tuple[list[StoredLetter], int]:
    """One page of the letters `chosen`, newest first, and how many are chosen in all."""
    where: list[ColumnElement[bool]] = []
    if chosen.sources:
        where.append(DeadLetterRow.source.in_(list(chosen.sources)))
    if chosen.since is not None:
        where.append(DeadLetterRow.ts >= chosen.since)
    if chosen.scope is not None:
        where.append(chosen.scope)
    async with ops.sessions() as s:
        total = (await s.execute(select(func.count()).select_from(DeadLetterRow).where(*where))).scalar_one()
        query = select(DeadLetterRow).where(*where).order_by(DeadLetterRow.id.desc()).limit(limit).offset(offset)
        rows = (await s.scalars(query)).all()
    return [StoredLetter(r.id, r.ts, r.source, r.key, r.reason, r.payload) for r in rows], total


def answer_of(letter: StoredLetter, keys: LetterKeys) -> DeadLetterAnswer:
    """The letter as the API and `facility dead-letters --json` show it: with the device it names."""
    device = keys.device_of(letter.source, letter.key)
    return DeadLetterAnswer(device=device, **asdict(letter))


def router(ctx: ApiContext, auth: TokenAuth) -> APIRouter:
    r = APIRouter(tags=["dead letters"])
    keys = LetterKeys(ctx.site)

    @r.get("/dead-letters", response_model=DeadLetterPage)
    async def dead_letters(
        user: User = Depends(auth.require(Role.ENGINEER)),
        source: Annotated[list[Source], Query()] = [],  # noqa: B006 (FastAPI copies query defaults)
        since: Annotated[datetime | None, Query(description="met from (ISO 8601; no offset: site time)")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
        offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    ) -> DeadLetterPage:
        """The input the system could not use, newest first: where it came from, why it was refused
        and what it was. A user limited to buildings sees only the letters of their buildings'
        devices; letters that name no device of the site are for users of the whole site."""
        visible = ctx.visible(user)
        chosen = LetterFilter(
            sources=source,
            since=None if since is None else ctx.ns_of(since, "since"),
            scope=None if visible is None else keys.naming(visible),
        )
        letters, total = await letter_page(ctx.ops, chosen, limit, offset)
        items = [answer_of(d, keys) for d in letters]
        return DeadLetterPage(items=items, total=total, limit=limit, offset=offset)

    return r
