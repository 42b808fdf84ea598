"""Reading the dead letters back: a page of them by source, time and the devices they name.

The ops store keeps the letters (facility.store.ops: `add_dead_letter`, its limits and retention);
this module is the read side the API and `facility dead-letters` share. A letter names a device by
its key: an MQTT letter by the topic it came on (a device's data or status topic), every other
source by a key that starts `device/` (`pump-1/outlet_pressure`), so that a user limited to
buildings can be given the letters of their buildings' devices only.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import ColumnElement, false, func, or_, select

from facility.site import Site
from facility.store.ops import DeadLetter, DeadLetterRow, OpsStore

Source = Literal["mqtt", "modbus", "telemetry", "webhook"]  # who keeps letters: the gateway and the notifier


@dataclass(frozen=True)
class StoredLetter(DeadLetter):
    """A dead letter as the ops store keeps it, with its id (increasing: a later letter's is larger)."""

    id: int


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
    return [StoredLetter(r.ts, r.source, r.key, r.reason, r.payload, r.id) for r in rows], total
