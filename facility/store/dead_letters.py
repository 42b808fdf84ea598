"""The dead letters of the ops store: keeping them within their limits, and reading them back, a page
of them by source, time and the devices they name.

Dead letters are kept for a while, not for ever (`DeadLetterLimits`, from the site file's `stores`):
each payload is cut to its first few KiB (its reason says so), the newest rows are kept up to a
limit as letters come, and those past the retention go in an hourly pass of the ops store's
watcher. What goes is counted (`figures`) and logged.

The read side (`letter_page`) is what the API and `facility dead-letters` share. A letter names a device by
its key: an MQTT letter by the topic it came on (a device's data or status topic), every other
source by a key that starts `device/` (`pump-1/outlet_pressure`), so that a user limited to
buildings can be given the letters of their buildings' devices only.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

from sqlalchemy import ColumnElement, CursorResult, Delete, delete, false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from facility.readiness import Figure
from facility.records import DeadLetter
from facility.site import Site, Stores
from facility.store.tables import DeadLetterRow

if TYPE_CHECKING:
    from facility.store.ops import OpsStore

log = logging.getLogger(__name__)

_PRUNED_HELP = "dead letters deleted: past stores.dead_letter_retention (age), beyond stores.dead_letter_rows (limit)"
_CUT_HELP = "dead letters whose payload was cut to stores.dead_letter_payload_kb"
_KEPT_HELP = "input that could not be used, kept as a dead letter in the ops store, by source"

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


@dataclass(frozen=True)
class DeadLetterLimits:
    """How much of the dead letters the store keeps: none older than `retention_ns`, at most the
    newest `rows`, and of each payload its first `payload_bytes` (UTF-8)."""

    retention_ns: int
    rows: int
    payload_bytes: int

    @classmethod
    def of(cls, stores: Stores) -> DeadLetterLimits:
        """The limits the site file sets (`stores.dead_letter_*`)."""
        retention_ns = int(stores.dead_letter_retention * 1e9)
        return cls(retention_ns, stores.dead_letter_rows, stores.dead_letter_payload_kb * 1024)


DEAD_LETTER_LIMITS = DeadLetterLimits.of(Stores())  # a site file's defaults


class DeadLetterStore:
    """The dead letters of one ops store (`OpsStore.letters`): kept within `DeadLetterLimits`, and
    what went or was cut counted, so that a flood of bad input costs bounded space and no one is
    left wondering where a letter went."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], limits: DeadLetterLimits) -> None:
        self._sessions = sessions
        self._limits = limits
        self._pruned = {"age": 0, "limit": 0}  # dead letters deleted, by why
        self._payloads_cut = 0
        self._kept: Counter[str] = Counter()  # dead letters stored, by source
        self._told_full = False  # the row limit's first deletion is logged; the counter tells the rest

    async def add(self, letters: list[DeadLetter]) -> None:
        """Keep `letters`, each payload cut to the limit (the reason then says so), and delete the
        oldest rows beyond the row limit: a flood of bad input never grows the table past it."""
        limit = self._limits.payload_bytes
        rows, cut = [], 0
        for d in letters:
            payload, reason, encoded = d.payload, d.reason, d.payload.encode()
            if len(encoded) > limit:  # its size is not told: the gateway may have cut it already
                payload = encoded[:limit].decode(errors="ignore")  # never half a character
                reason = f"{reason} (payload cut to its first {len(payload.encode())} bytes)"
                cut += 1
            rows.append(DeadLetterRow(ts=d.ts, source=d.source, key=d.key, reason=reason, payload=payload))
        async with self._sessions.begin() as s:
            s.add_all(rows)
            await s.flush()
            over = await self._delete_over_limit(s)
        self._payloads_cut += cut
        self._pruned["limit"] += over
        self._kept.update(d.source for d in letters)
        if over and not self._told_full:
            self._told_full = True
            log.warning(
                "ops store: the dead letters reached their limit of %d rows (stores.dead_letter_rows); the oldest "
                "are deleted as new ones come, counted in facility_dead_letters_pruned_total",
                self._limits.rows,
            )

    async def prune(self, now: int) -> int:
        """Delete the dead letters older than the retention at `now`, and those beyond the row limit;
        returns how many. The ops store's watcher calls it hourly, so that a quiet estate drops them too."""
        retention = self._limits.retention_ns
        async with self._sessions.begin() as s:
            aged = await _deleted(s, delete(DeadLetterRow).where(DeadLetterRow.ts < now - retention))
            over = await self._delete_over_limit(s)
        self._pruned["age"] += aged
        self._pruned["limit"] += over
        if aged or over:
            log.info(
                "ops store: deleted %d dead letters older than %s and %d beyond the newest %d",
                aged,
                _days(retention),
                over,
                self._limits.rows,
            )
        return aged + over

    async def _delete_over_limit(self, s: AsyncSession) -> int:
        """Delete all but the newest `rows` dead letters; returns how many went."""
        first_gone = select(DeadLetterRow.id).order_by(DeadLetterRow.id.desc()).offset(self._limits.rows)
        edge = (await s.execute(first_gone.limit(1))).scalar()
        return 0 if edge is None else await _deleted(s, delete(DeadLetterRow).where(DeadLetterRow.id <= edge))

    async def recent(self, limit: int = 100) -> list[DeadLetter]:
        """The most recent dead letters, newest first."""
        async with self._sessions() as s:
            rows = await s.scalars(select(DeadLetterRow).order_by(DeadLetterRow.id.desc()).limit(limit))
            return [DeadLetter(r.ts, r.source, r.key, r.reason, r.payload) for r in rows]

    def figures(self) -> Iterable[Figure]:
        """What the store has deleted or cut of the dead letters since the process started."""
        for why, count in self._pruned.items():
            yield Figure("dead_letters_pruned_total", _PRUNED_HELP, "counter", count, (("reason", why),))
        yield Figure("dead_letter_payloads_cut_total", _CUT_HELP, "counter", self._payloads_cut)
        for source, count in sorted(self._kept.items()):
            yield Figure("dead_letters_total", _KEPT_HELP, "counter", count, (("source", source),))


async def _deleted(s: AsyncSession, statement: Delete) -> int:
    """Run a bulk delete (the session's objects are not looked at); returns how many rows went."""
    result = await s.execute(statement.execution_options(synchronize_session=False))
    return cast(CursorResult[Any], result).rowcount  # a DELETE's result is a cursor's


def _days(ns: int) -> str:
    """A retention as the log says it."""
    return f"{ns / 86_400_000_000_000:g} days"
