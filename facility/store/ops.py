"""The ops store: alarms and their history, dead letters and the audit log, on SQLAlchemy (SQLite
by default, PostgreSQL by URL).

An alarm row is open from the moment it is raised until it is returned to normal, acknowledged and
not shelved (a shelf outlives recurrences, as ISA-18.2 shelves the alarm, not one occurrence). At
most one open alarm exists per rule and device (a partial unique index makes the database enforce
it); a recurrence re-activates the open one instead of adding a second. Besides its ISA state an
alarm carries flags: shelved (by a user, with reason and expiry), suppressed by design, out of
service (its device is under maintenance), chattering and escalated.

Refused operator actions raise `ActionRefused` (a ValueError) saying why; an unknown alarm id gives
None.

The store may be down: `start(wait=False)` returns at once and reaches the database in the
background (creating or upgrading the schema when it answers), so that ingest and the rules run
without it. While it does not answer, every call raises `OpsUnavailable` instead of a driver's
error, which the API answers with 503 and rules.outcomes waits out (outcomes are journaled on local
disk meanwhile). A watcher checks the database every few seconds while nothing else uses it, so
that `available` and the readiness view stay honest.

Dead letters are kept for a while, not for ever (`DeadLetterLimits`, from the site file's `stores`):
each payload is cut to its first few KiB (its reason says so), the newest rows are kept up to a
limit as letters come, and those past the retention go in an hourly pass of the watcher. What goes
is counted (`figures`) and logged, so that a flood of bad input costs bounded space and no one is
left wondering where a letter went.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    CursorResult,
    Delete,
    ForeignKey,
    Index,
    String,
    Text,
    and_,
    case,
    delete,
    false,
    func,
    inspect,
    not_,
    or_,
    select,
    text,
)
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Dialect, ExceptionContext, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, selectinload

from facility.model import AlarmState, now_ns
from facility.readiness import Figure, PartState, State
from facility.site import Stores
from facility.store import migrations
from facility.store.migrations import SchemaRefused
from facility.store.sqlite_telemetry import private_file

log = logging.getLogger(__name__)

MINUTE_NS = 60 * 1_000_000_000
CHATTER_LIMIT = 5  # activations within the window beyond which an alarm is chattering
CHATTER_WINDOW_NS = 10 * MINUTE_NS  # also how long it must stay quiet to stop chattering
MAX_SHELVE_NS = 24 * 60 * MINUTE_NS  # a shelf longer than a day hides a fault: fix or take out of service
MAX_COMMENT = 2000  # characters
ACTIVATIONS = frozenset({"raised", "raised again"})  # history actions of an alarm going active
SPREAD = "spread"  # history action: while active, the alarm's text grew (a second zone in fire)


CONNECT_TIMEOUT_S = 10.0  # a PostgreSQL server that does not answer: give up a connection attempt after this
REACH_MAX_S = 10.0  # the longest pause between attempts to reach a store that is down
CHECK_EVERY_S = 5.0  # while up and idle, how often the watcher checks that the store still answers
PRUNE_EVERY_NS = 3600 * 1_000_000_000  # how often the watcher deletes the dead letters past their retention
_PRUNED_HELP = "dead letters deleted: past stores.dead_letter_retention (age), beyond stores.dead_letter_rows (limit)"
_CUT_HELP = "dead letters whose payload was cut to stores.dead_letter_payload_kb"
_KEPT_HELP = "input that could not be used, kept as a dead letter in the ops store, by source"
# SQLite's words for a database that cannot be reached or written (its other errors are bugs or data)
_SQLITE_UNREACHABLE = ("unable to open database", "disk i/o error", "database is locked", "readonly", "disk is full")


class ActionRefused(ValueError):
    """An action the input or the alarm's state does not allow; the message says why."""


class OpsUnavailable(ConnectionError):
    """The ops store does not answer (down, unreachable, or not reached yet since the start): what
    needs it must wait or retry. A ConnectionError (the command line reports it as such), never a
    ValueError: nothing about the request is wrong."""


class Base(DeclarativeBase):
    pass


class AlarmRow(Base):
    __tablename__ = "alarms"

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[str] = mapped_column(String(200))
    device_id: Mapped[str] = mapped_column(String(200))
    priority: Mapped[str] = mapped_column(String(20))
    title_zh: Mapped[str] = mapped_column(Text, default="")
    title_en: Mapped[str] = mapped_column(Text, default="")
    message_zh: Mapped[str] = mapped_column(Text, default="")
    message_en: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool]
    acknowledged: Mapped[bool]
    is_open: Mapped[bool]
    raised_at: Mapped[int] = mapped_column(BigInteger)  # UTC ns
    changed_at: Mapped[int] = mapped_column(BigInteger)
    acked_at: Mapped[int | None] = mapped_column(BigInteger)
    acked_by: Mapped[str | None] = mapped_column(String(200))
    cleared_at: Mapped[int | None] = mapped_column(BigInteger)
    activated_at: Mapped[int] = mapped_column(BigInteger)  # when it last went active
    shelved: Mapped[bool] = mapped_column(default=False)
    shelved_until: Mapped[int | None] = mapped_column(BigInteger)
    shelved_by: Mapped[str | None] = mapped_column(String(200))
    shelve_reason: Mapped[str | None] = mapped_column(Text)
    suppressed: Mapped[bool] = mapped_column(default=False)
    out_of_service: Mapped[bool] = mapped_column(default=False)
    chattering: Mapped[bool] = mapped_column(default=False)
    escalated: Mapped[bool] = mapped_column(default=False)
    history: Mapped[list[AlarmHistoryRow]] = relationship(order_by="AlarmHistoryRow.id", cascade="all, delete-orphan")

    __table_args__ = (
        Index("alarms_open_by_change", "is_open", "changed_at"),
        Index("alarms_by_raised", "raised_at"),
        Index("alarms_by_rule_and_device", "rule_id", "device_id"),  # chattering counts every occurrence
        Index(
            "one_open_alarm_per_rule_and_device",
            "rule_id",
            "device_id",
            unique=True,
            sqlite_where=text("is_open"),
            postgresql_where=text("is_open"),
        ),
    )

    @property
    def state(self) -> AlarmState:
        return AlarmState.of(
            self.active,
            self.acknowledged,
            shelved=self.shelved,
            suppressed=self.suppressed,
            out_of_service=self.out_of_service,
        )

    def settle(self) -> None:
        """Close the alarm once nothing keeps it open any more."""
        self.is_open = self.active or not self.acknowledged or self.shelved


class AlarmHistoryRow(Base):
    __tablename__ = "alarm_history"

    id: Mapped[int] = mapped_column(primary_key=True)
    alarm_id: Mapped[int] = mapped_column(ForeignKey("alarms.id"), index=True)
    ts: Mapped[int] = mapped_column(BigInteger)
    action: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(200), default="")
    detail: Mapped[str] = mapped_column(Text, default="")

    # Reports and the handover read a period's actions (acknowledged, raised...) across all alarms.
    __table_args__ = (Index("alarm_history_by_action_and_time", "action", "ts"),)


class OutOfServiceRow(Base):
    """A device under maintenance: its alarms are still recorded, flagged out of service."""

    __tablename__ = "out_of_service"

    device_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    since: Mapped[int] = mapped_column(BigInteger)
    set_by: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)


class DeadLetterRow(Base):
    """Input the system could not use, kept so that nothing is lost silently."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(primary_key=True)
    ts: Mapped[int] = mapped_column(BigInteger, index=True)
    source: Mapped[str] = mapped_column(String(40))  # mqtt, modbus, telemetry
    key: Mapped[str] = mapped_column(String(400))  # topic, device/point, ...
    reason: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)


class AuditRow(Base):
    """One change someone asked for (a Modbus write, ...): who, when, from where, and how it ended.

    `device` and `site_wide` say whose building it concerns, for users limited to buildings: the
    device of the record changed, or a site-wide record (a task of no device) that every building
    sees; an entry with neither (a rule reload, an id that names nothing) is for the whole site's
    managers only."""

    __tablename__ = "audit"

    id: Mapped[int] = mapped_column(primary_key=True)
    ts: Mapped[int] = mapped_column(BigInteger, index=True)  # UTC ns of the request
    actor: Mapped[str] = mapped_column(String(200))  # user name
    source: Mapped[str] = mapped_column(String(200))  # client address
    action: Mapped[str] = mapped_column(String(40))  # write, ...
    target: Mapped[str] = mapped_column(String(400))  # device/point, ...
    detail: Mapped[str] = mapped_column(Text)  # JSON object: value asked for, confirmed value or error
    outcome: Mapped[str] = mapped_column(String(20))  # pending, ok, refused, failed
    device: Mapped[str | None] = mapped_column(String(200))
    site_wide: Mapped[bool] = mapped_column(default=False, server_default=false())


@dataclass(frozen=True)
class AuditEntry:
    id: int
    ts: int
    actor: str
    source: str
    action: str
    target: str
    detail: dict[str, Any]
    outcome: str


@dataclass(frozen=True)
class DeadLetter:
    ts: int
    source: str
    key: str
    reason: str
    payload: str


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


@dataclass(frozen=True)
class NewAlarm:
    """What the rules know when a condition becomes active."""

    rule_id: str
    device_id: str
    priority: str
    title_zh: str
    title_en: str
    message_zh: str
    message_en: str
    ts: int
    suppressed: bool = False  # suppressed by design: kept and shown as such, not announced as new


def spread_detail(new: tuple[str, str], was: tuple[str, str]) -> str:
    """The detail of a `spread` history entry: the alarm's new text and the text it replaced,
    (zh, en) each, as JSON, so that the desk's history shows both in either language (see
    spread_texts and replaced_texts)."""
    return json.dumps({"zh": new[0], "en": new[1], "was": {"zh": was[0], "en": was[1]}}, ensure_ascii=False)


def _bilingual(found: Any) -> dict[str, str] | None:
    if isinstance(found, dict) and isinstance(found.get("zh"), str) and isinstance(found.get("en"), str):
        return {"zh": found["zh"], "en": found["en"]}
    return None


def _spread(detail: str) -> dict[str, Any]:
    try:
        found = json.loads(detail)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def spread_texts(detail: str) -> dict[str, str]:
    """The {zh, en} new text of a `spread` history entry's detail (the detail itself in both if it
    is not what spread_detail wrote)."""
    return _bilingual(_spread(detail)) or {"zh": detail, "en": detail}


def replaced_texts(detail_en: str, history: list[dict[str, Any]]) -> dict[str, str] | None:
    """The {zh, en} of an alarm text a later spread replaced, by its English (a `raised` entry's
    detail, once the alarm's message is no longer that text); None when no spread replaced it."""
    for entry in history:
        if entry["action"] == SPREAD:
            was = _bilingual(_spread(entry["detail"]).get("was"))
            if was is not None and was["en"] == detail_en:
                return was
    return None


def alarm_dict(row: AlarmRow, *, with_history: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": row.id,
        "rule": row.rule_id,
        "device": row.device_id,
        "priority": row.priority,
        "state": row.state.value,
        "active": row.active,
        "acknowledged": row.acknowledged,
        "title": {"zh": row.title_zh, "en": row.title_en},
        "message": {"zh": row.message_zh, "en": row.message_en},
        "raised_at": row.raised_at,
        "changed_at": row.changed_at,
        "acked_at": row.acked_at,
        "acked_by": row.acked_by,
        "cleared_at": row.cleared_at,
        "activated_at": row.activated_at,
        "shelved": row.shelved,
        "shelved_until": row.shelved_until,
        "shelved_by": row.shelved_by,
        "shelve_reason": row.shelve_reason,
        "suppressed": row.suppressed,
        "out_of_service": row.out_of_service,
        "chattering": row.chattering,
        "escalated": row.escalated,
    }
    if with_history:
        out["history"] = [
            {"ts": h.ts, "action": h.action, "actor": h.actor, "source": h.source, "detail": h.detail}
            for h in row.history
        ]
    return out


class _Sessions(async_sessionmaker[AsyncSession]):
    """The store's session maker, shared with the stores of other records (tasks, plans, users):
    a session asked for while `start` has not reached the database yet raises OpsUnavailable,
    rather than reach a database that is down or lacks its tables."""

    def __init__(self, engine: AsyncEngine, store: OpsStore) -> None:
        super().__init__(engine, expire_on_commit=False)
        self._store = store

    def __call__(self, **local_kw: Any) -> AsyncSession:
        if not self._store.ready:
            raise OpsUnavailable(self._store.unavailable_text())
        return super().__call__(**local_kw)


class OpsStore:
    def __init__(
        self,
        url: str,
        *,
        chatter_limit: int = CHATTER_LIMIT,
        check_every_s: float = CHECK_EVERY_S,
        dead_letters: DeadLetterLimits = DEAD_LETTER_LIMITS,
    ) -> None:
        self._chatter_limit = chatter_limit
        self._check_every_s = check_every_s
        self._letter_limits = dead_letters
        self._letters_pruned = {"age": 0, "limit": 0}  # dead letters deleted, by why
        self._payloads_cut = 0
        self._letters_kept: Counter[str] = Counter()  # dead letters stored, by source
        self._told_letters_full = False  # the row limit's first deletion is logged; the counter tells the rest
        self._prune_due_ns = 0  # when the watcher next deletes the dead letters past their retention
        parsed = make_url(url)
        self._file: Path | None = None  # a SQLite database file
        if parsed.drivername.startswith("sqlite") and parsed.database not in (None, "", ":memory:"):
            self._file = Path(parsed.database)
        connect_args = {"timeout": CONNECT_TIMEOUT_S} if parsed.drivername.endswith("asyncpg") else {}
        # Query parameters (among them the digest of every token presented) stay out of the log at
        # any level: SQLAlchemy hides them from its echo and its errors, and aiosqlite, which logs
        # every call with its arguments at DEBUG (`facility run -v`), says only its warnings.
        logging.getLogger("aiosqlite").setLevel(logging.WARNING)
        # PostgreSQL: a pooled connection may have died with an outage; test it before use.
        self._engine = create_async_engine(
            url,
            pool_pre_ping=not parsed.drivername.startswith("sqlite"),
            connect_args=connect_args,
            hide_parameters=True,
        )
        self._name = self._engine.url.render_as_string(hide_password=True)
        sa_event.listen(self._engine.sync_engine, "do_connect", self._connect)
        sa_event.listen(self._engine.sync_engine, "handle_error", self._failed)
        sa_event.listen(self._engine.sync_engine, "after_cursor_execute", self._answered)
        self._sessions = _Sessions(self._engine, self)
        self._ready = True  # no start under way that has not reached the database: sessions may be handed out
        self._up = asyncio.Event()  # the last thing tried on the database worked
        self._detail = "not reached yet"  # why it is not up
        self._failing = False  # an attempt to reach it failed, and none has worked since
        self._last_success_ns: int | None = None
        self._watcher: asyncio.Task[None] | None = None

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        """For the stores of other records (tasks, plans) that keep their tables on `Base`."""
        return self._sessions

    @property
    def ready(self) -> bool:
        """Not waiting for the database to prepare its schema: `start` reached it (or was not called,
        and the caller uses the database as it is)."""
        return self._ready

    @property
    def available(self) -> bool:
        """The store answered the last thing asked of it."""
        return self._ready and self._up.is_set()

    @property
    def failing(self) -> bool:
        """It was tried and did not answer (rather than: a start has not reached it yet)."""
        return self._failing

    async def wait_available(self) -> None:
        """Return once the store answers (at once if it does)."""
        while not self.available:
            self._watch()
            await self._up.wait()

    def unavailable_text(self) -> str:
        return f"the ops store {self._name} does not answer: {self._detail}"

    async def start(self, *, wait: bool = True) -> None:
        """Create the schema or bring it to this version's newest revision (`upgrade`); refuse
        (SchemaRefused) a database this version cannot upgrade, rather than fail on the first alarm.
        With `wait` false, return at once and do this in the background, trying again until the
        database answers: the service must run (ingest, raise alarms) while it is down."""
        self._ready = False
        if wait:
            await self._prepare()
        self._watch()

    def _watch(self) -> None:
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.create_task(self._watch_over(), name="ops store watcher")

    async def _watch_over(self) -> None:
        """Reach the store (preparing its schema first), then check it while nothing else does."""
        failures = 0
        told = ""
        while True:
            try:
                if not self._ready:
                    await self._prepare()
                elif not self._up.is_set() or now_ns() - (self._last_success_ns or 0) > self._check_every_s * 1e9:
                    async with self._engine.connect() as conn:
                        await conn.execute(select(1))
                if self.available and now_ns() >= self._prune_due_ns:
                    self._prune_due_ns = now_ns() + PRUNE_EVERY_NS
                    await self.prune_dead_letters(now_ns())
            except Exception as exc:
                if str(exc) != told:  # once per outage and cause, not once per attempt
                    told = str(exc)
                    if isinstance(exc, OpsUnavailable):
                        log.warning("%s; trying again", exc)
                    else:  # a schema this version cannot upgrade, or a bug: it needs a person
                        log.error("the ops store %s cannot be used; trying again", self._name, exc_info=exc)
                failures += 1
                await asyncio.sleep(min(REACH_MAX_S, 0.1 * 2**failures))
                continue
            if told:
                log.warning("the ops store %s answers again", self._name)
            failures, told = 0, ""
            await asyncio.sleep(self._check_every_s)

    async def _prepare(self) -> None:
        await self.upgrade()
        log.info("ops store %s ready", self._name)
        self._ready = True
        self._failing = False
        self._up.set()

    async def upgrade(self) -> migrations.Upgraded:
        """Apply the migrations this database lacks (adopting one of the release before them), under
        a lock that other instances and processes wait for, and check that the result holds every
        table and column this version uses. `start` does it; `facility db upgrade` does only it."""
        if self._file is not None:
            try:
                self._file.parent.mkdir(parents=True, exist_ok=True)
                private_file(self._file)  # it holds the users' token digests
            except OSError as exc:
                self._down(f"{type(exc).__name__}: {exc}")
                raise OpsUnavailable(self.unavailable_text()) from exc
        return await migrations.upgrade(self._engine, self._name, self._check_schema)

    async def schema(self) -> migrations.Schema:
        """Where the database stands against this version's migrations, changing nothing (a SQLite
        file that does not exist is not made)."""
        if self._file is not None and not self._file.exists():
            return migrations.Schema(None, migrations.head(), tables=False, known=True)
        async with self._engine.connect() as conn:
            return await conn.run_sync(migrations.schema)

    def _check_schema(self, conn: Connection) -> None:
        """Refuse a database lacking a table or column of this version's records once its migrations
        are applied, as it would fail on the first alarm: changed by hand, or made by a version older
        than those an adoption upgrades."""
        inspector = inspect(conn)
        present = set(inspector.get_table_names())
        missing = []
        for table in Base.metadata.sorted_tables:
            if table.name not in present:
                missing.append(table.name)
                continue
            columns = {c["name"] for c in inspector.get_columns(table.name)}
            missing += [f"{table.name}.{c.name}" for c in table.columns if c.name not in columns]
        if missing:
            raise SchemaRefused(
                f"the ops database {self._name} lacks {', '.join(missing)}, which no migration adds: it was"
                " changed by hand, or made by a version older than the release before migrations;"
                " restore those or start from a new database"
            )

    def _down(self, detail: str) -> None:
        self._up.clear()
        self._detail = detail
        self._failing = True

    def _connect(self, dialect: Dialect, _record: Any, cargs: Any, cparams: Any) -> Any:
        """Open a connection as the dialect would, turning a refusal into OpsUnavailable: drivers
        raise their own errors (or a bare OSError) when the server cannot be reached."""
        try:
            return dialect.connect(*cargs, **cparams)
        except (OSError, TimeoutError, dialect.loaded_dbapi.Error) as exc:
            self._down(f"{type(exc).__name__}: {exc}".strip())
            raise OpsUnavailable(self.unavailable_text()) from exc

    def _failed(self, context: ExceptionContext) -> None:
        """A statement failed: a lost connection or an unreachable file becomes OpsUnavailable; other
        errors (constraints, bugs) stay what they are. A pre-ping only reports: the pool reconnects."""
        error = context.original_exception
        if not isinstance(error, Exception):  # a cancellation (SQLAlchemy calls it a disconnect): let it through
            return
        lost = context.is_disconnect or (
            isinstance(error, sqlite3.OperationalError)
            and any(words in str(error).lower() for words in _SQLITE_UNREACHABLE)
        )
        if not lost or context.is_pre_ping:
            return
        self._down(f"{type(error).__name__}: {error}".strip())
        raise OpsUnavailable(self.unavailable_text()) from error

    def _answered(self, *_args: Any) -> None:
        self._last_success_ns = now_ns()
        if not self._up.is_set() and self._ready:
            self._failing = False
            self._up.set()

    def parts(self) -> Iterable[PartState]:
        """The ops store's readiness (facility.readiness.Reporter)."""
        up = self.available
        detail = "" if up else f"does not answer: {self._detail}; outcomes are journaled, lists and users answer 503"
        yield PartState("ops store", "ops_store", State.UP if up else State.DOWN, self._last_success_ns, detail)

    def figures(self) -> Iterable[Figure]:
        """What the store has deleted or cut of the dead letters since the process started."""
        for why, count in self._letters_pruned.items():
            yield Figure("dead_letters_pruned_total", _PRUNED_HELP, "counter", count, (("reason", why),))
        yield Figure("dead_letter_payloads_cut_total", _CUT_HELP, "counter", self._payloads_cut)
        for source, count in sorted(self._letters_kept.items()):
            yield Figure("dead_letters_total", _KEPT_HELP, "counter", count, (("source", source),))

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        await self._engine.dispose()

    async def raise_alarm(self, new: NewAlarm) -> tuple[dict[str, Any], str | None]:
        """Raise or re-activate the open alarm of (rule, device), or, while it is active, start or
        end its suppression; returns it and the history action recorded (None: nothing changed)."""
        async with self._sessions.begin() as s:
            row = await self._open(s, new.rule_id, new.device_id)
            if row is not None and row.active:
                if row.suppressed == new.suppressed:
                    return alarm_dict(row), None
                row.suppressed, row.changed_at = new.suppressed, new.ts
                action = "suppressed" if new.suppressed else "suppression ended"
                s.add(AlarmHistoryRow(alarm_id=row.id, ts=new.ts, action=action, actor="rules"))
                return alarm_dict(row), action
            if row is None:
                row = AlarmRow(
                    rule_id=new.rule_id,
                    device_id=new.device_id,
                    raised_at=new.ts,
                    acknowledged=False,
                    is_open=True,
                    out_of_service=await s.get(OutOfServiceRow, new.device_id) is not None,
                )
                s.add(row)
                action = "raised"
            else:
                action = "raised again"
            row.priority, row.title_zh, row.title_en = new.priority, new.title_zh, new.title_en
            row.message_zh, row.message_en = new.message_zh, new.message_en
            row.active, row.acknowledged, row.suppressed, row.escalated = True, False, new.suppressed, False
            row.changed_at, row.activated_at, row.cleared_at, row.acked_at, row.acked_by = (
                new.ts,
                new.ts,
                None,
                None,
                None,
            )
            await s.flush()
            s.add(AlarmHistoryRow(alarm_id=row.id, ts=new.ts, action=action, actor="rules", detail=new.message_en))
            await self._note_chattering(s, row, new.ts)
            return alarm_dict(row), action

    async def spread_alarm(self, new: NewAlarm) -> tuple[dict[str, Any] | None, str | None]:
        """Give the active alarm of (rule, device) the title and message of `new` (its condition's
        text grew while active) and record a `spread` entry with the new message and the one it
        replaced, in both languages;
        returns it and `spread`, or it and None when it shows that text already (a spread applied
        again), or None and None when no alarm of (rule, device) is active."""
        async with self._sessions.begin() as s:
            row = await self._open(s, new.rule_id, new.device_id)
            if row is None or not row.active:
                return None, None
            texts = (new.title_zh, new.title_en, new.message_zh, new.message_en)
            if (row.title_zh, row.title_en, row.message_zh, row.message_en) == texts:
                return alarm_dict(row), None
            was = (row.message_zh or row.title_zh, row.message_en or row.title_en)
            row.title_zh, row.title_en, row.message_zh, row.message_en = texts
            row.changed_at = new.ts
            detail = spread_detail((new.message_zh or new.title_zh, new.message_en or new.title_en), was)
            s.add(AlarmHistoryRow(alarm_id=row.id, ts=new.ts, action=SPREAD, actor="rules", detail=detail))
            return alarm_dict(row), SPREAD

    async def _note_chattering(self, s: AsyncSession, row: AlarmRow, ts: int) -> None:
        """Flag the alarm once (rule, device) has gone active more than the limit within the window,
        counting the occurrences that have closed since."""
        if row.chattering:
            return
        query = (
            select(func.count())
            .select_from(AlarmHistoryRow)
            .join(AlarmRow)
            .where(
                AlarmRow.rule_id == row.rule_id,
                AlarmRow.device_id == row.device_id,
                AlarmHistoryRow.action.in_(ACTIVATIONS),
                AlarmHistoryRow.ts > ts - CHATTER_WINDOW_NS,
            )
        )
        count = (await s.execute(query)).scalar_one()
        if count > self._chatter_limit:
            row.chattering = True
            detail = f"{count} activations within {CHATTER_WINDOW_NS // MINUTE_NS} min"
            s.add(AlarmHistoryRow(alarm_id=row.id, ts=ts, action="chattering", actor="rules", detail=detail))

    async def return_to_normal(self, rule_id: str, device_id: str, ts: int) -> dict[str, Any] | None:
        """Mark the active alarm of (rule, device) as returned to normal; None if there is none."""
        async with self._sessions.begin() as s:
            row = await self._open(s, rule_id, device_id)
            if row is None or not row.active:
                return None
            row.active, row.cleared_at, row.changed_at = False, ts, ts
            row.settle()
            s.add(AlarmHistoryRow(alarm_id=row.id, ts=ts, action="returned to normal", actor="rules"))
            return alarm_dict(row)

    async def acknowledge(self, alarm_id: int, user: str, source: str, ts: int) -> dict[str, Any] | None:
        """Acknowledge an alarm; None if no such alarm. Acknowledging twice changes nothing."""
        async with self._sessions.begin() as s:
            row = await s.get(AlarmRow, alarm_id, with_for_update=True)
            if row is None:
                return None
            if not row.acknowledged:
                row.acknowledged, row.acked_at, row.acked_by, row.changed_at = True, ts, user, ts
                row.settle()
                s.add(AlarmHistoryRow(alarm_id=row.id, ts=ts, action="acknowledged", actor=user, source=source))
            return alarm_dict(row)

    async def shelve(
        self, alarm_id: int, user: str, source: str, reason: str, until_ns: int, ts: int
    ) -> dict[str, Any] | None:
        """Hide an open alarm from duty staff until `until_ns` (at most a day ahead), with a reason;
        shelving a shelved alarm sets a new expiry. None if no such alarm; ActionRefused for an
        empty reason, an expiry not ahead or too far ahead, or a closed alarm."""
        reason = reason.strip()
        if not reason:
            raise ActionRefused("a reason is needed to shelve an alarm")
        if until_ns <= ts:
            raise ActionRefused(f"the shelf expiry {_utc(until_ns)} is not in the future")
        if until_ns - ts > MAX_SHELVE_NS:
            raise ActionRefused(f"an alarm can be shelved for {MAX_SHELVE_NS // (60 * MINUTE_NS)} h at most")
        async with self._sessions.begin() as s:
            row = await s.get(AlarmRow, alarm_id, with_for_update=True)
            if row is None:
                return None
            if not row.is_open:
                raise ActionRefused(f"alarm {alarm_id} is closed; only an open alarm can be shelved")
            row.shelved, row.shelved_until, row.shelved_by, row.shelve_reason = True, until_ns, user, reason
            row.changed_at = ts
            row.settle()
            detail = f"until {_utc(until_ns)}: {reason}"
            s.add(AlarmHistoryRow(alarm_id=row.id, ts=ts, action="shelved", actor=user, source=source, detail=detail))
            return alarm_dict(row)

    async def unshelve(self, alarm_id: int, user: str, source: str, ts: int) -> dict[str, Any] | None:
        """Put a shelved alarm back before its expiry. None if no such alarm; ActionRefused if it is
        not shelved."""
        async with self._sessions.begin() as s:
            row = await s.get(AlarmRow, alarm_id, with_for_update=True)
            if row is None:
                return None
            if not row.shelved:
                raise ActionRefused(f"alarm {alarm_id} is not shelved")
            _unshelve(s, row, user, source, "", ts)
            return alarm_dict(row)

    async def unshelve_expired(self, ts: int) -> list[dict[str, Any]]:
        """Put back every alarm whose shelf has expired by `ts`."""
        async with self._sessions.begin() as s:
            query = select(AlarmRow).where(AlarmRow.shelved, AlarmRow.shelved_until <= ts).with_for_update()
            rows = (await s.scalars(query)).all()
            for row in rows:
                _unshelve(s, row, "system", "", "shelf expired", ts)
            return [alarm_dict(row) for row in rows]

    async def comment(self, alarm_id: int, user: str, source: str, text: str, ts: int) -> dict[str, Any] | None:
        """Add a note to an alarm's history, open or closed. None if no such alarm; ActionRefused for
        an empty or overlong text."""
        text = text.strip()
        if not text:
            raise ActionRefused("a comment needs some text")
        if len(text) > MAX_COMMENT:
            raise ActionRefused(f"a comment is at most {MAX_COMMENT} characters, this one has {len(text)}")
        async with self._sessions.begin() as s:
            row = await s.get(AlarmRow, alarm_id)
            if row is None:
                return None
            s.add(AlarmHistoryRow(alarm_id=row.id, ts=ts, action="comment", actor=user, source=source, detail=text))
            return alarm_dict(row)

    async def set_out_of_service(
        self, device: str, on: bool, user: str, source: str, reason: str, ts: int
    ) -> list[dict[str, Any]]:
        """Take a device out of service (a reason is needed) or put it back; its open alarms take the
        flag, and the audit log records who, when and from where. Returns the alarms changed.
        ActionRefused if the device is already in the state asked for, or the reason is missing."""
        reason = reason.strip()
        if on and not reason:
            raise ActionRefused("a reason is needed to take a device out of service")
        async with self._sessions.begin() as s:
            current = await s.get(OutOfServiceRow, device, with_for_update=True)
            if on and current is not None:
                raise ActionRefused(
                    f"{device} is out of service already, since {_utc(current.since)} by {current.set_by}"
                )
            if not on and current is None:
                raise ActionRefused(f"{device} is not out of service")
            if on:
                s.add(OutOfServiceRow(device_id=device, since=ts, set_by=user, source=source, reason=reason))
            else:
                await s.delete(current)
            action = "out of service" if on else "back in service"
            s.add(
                AuditRow(
                    ts=ts,
                    actor=user,
                    source=source,
                    action=action,
                    target=device,
                    detail=_json({"reason": reason}),
                    outcome="ok",
                    device=device,
                )
            )
            query = select(AlarmRow).where(AlarmRow.device_id == device, AlarmRow.is_open).with_for_update()
            rows = (await s.scalars(query)).all()
            for row in rows:
                row.out_of_service, row.changed_at = on, ts
                s.add(AlarmHistoryRow(alarm_id=row.id, ts=ts, action=action, actor=user, source=source, detail=reason))
            return [alarm_dict(row) for row in rows]

    async def out_of_service(self) -> dict[str, dict[str, Any]]:
        """The devices under maintenance: since when, set by whom, from where and why."""
        async with self._sessions() as s:
            rows = await s.scalars(select(OutOfServiceRow).order_by(OutOfServiceRow.device_id))
            return {
                r.device_id: {"since": r.since, "by": r.set_by, "source": r.source, "reason": r.reason} for r in rows
            }

    async def clear_quiet_chattering(self, ts: int) -> list[dict[str, Any]]:
        """Stop calling alarms chattering once they have not gone active for the chatter window."""
        async with self._sessions.begin() as s:
            query = select(AlarmRow).where(AlarmRow.chattering, AlarmRow.activated_at <= ts - CHATTER_WINDOW_NS)
            rows = (await s.scalars(query.with_for_update())).all()
            for row in rows:
                row.chattering = False
                s.add(AlarmHistoryRow(alarm_id=row.id, ts=ts, action="chattering ended", actor="rules"))
            return [alarm_dict(row) for row in rows]

    async def escalate_due(self, limits: Mapping[str, int], ts: int) -> list[dict[str, Any]]:
        """Escalate, once per activation, each open alarm of a priority in `limits` (ns) left
        unacknowledged that long since it went active; shelved, suppressed and out-of-service alarms
        are not in front of duty staff and do not escalate."""
        if not limits:
            return []
        due = or_(*(and_(AlarmRow.priority == p, AlarmRow.activated_at <= ts - limit) for p, limit in limits.items()))
        query = select(AlarmRow).where(
            AlarmRow.is_open,
            AlarmRow.acknowledged == false(),
            AlarmRow.escalated == false(),
            AlarmRow.shelved == false(),
            AlarmRow.suppressed == false(),
            AlarmRow.out_of_service == false(),
            due,
        )
        async with self._sessions.begin() as s:
            rows = (await s.scalars(query.with_for_update())).all()
            for row in rows:
                row.escalated, row.changed_at = True, ts
                detail = f"not acknowledged within {limits[row.priority] // 1_000_000_000} s"
                s.add(AlarmHistoryRow(alarm_id=row.id, ts=ts, action="escalated", actor="system", detail=detail))
            return [alarm_dict(row) for row in rows]

    async def list_alarms(self, *, include_closed: bool = False, limit: int = 500) -> list[dict[str, Any]]:
        """The open alarms, or with `include_closed` the `limit` most recently changed of any state."""
        page, _ = await self.alarm_page(open_only=not include_closed, sort="-changed_at", limit=limit)
        return page

    async def alarm_page(
        self,
        *,
        open_only: bool = True,
        states: Collection[AlarmState] = (),
        priorities: Collection[str] = (),
        devices: Collection[str] | None = None,
        since: int | None = None,
        until: int | None = None,
        sort: str = "desk",
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of the alarms matching every filter given, and how many match in all.

        `devices` limits to those devices (None: any); `since`/`until` bound when they were raised.
        `sort` is one of SORTS; `desk` puts what needs duty staff first: unacknowledged, then by
        priority, then the latest change."""
        where: list[ColumnElement[bool]] = []
        if open_only:
            where.append(AlarmRow.is_open.is_(True))
        if states:
            where.append(or_(*(_state_is(state) for state in states)))
        if priorities:
            where.append(AlarmRow.priority.in_(list(priorities)))
        if devices is not None:
            where.append(AlarmRow.device_id.in_(list(devices)))
        if since is not None:
            where.append(AlarmRow.raised_at >= since)
        if until is not None:
            where.append(AlarmRow.raised_at < until)
        async with self._sessions() as s:
            total = (await s.execute(select(func.count()).select_from(AlarmRow).where(*where))).scalar_one()
            query = select(AlarmRow).where(*where).order_by(*SORTS[sort](), AlarmRow.id.desc())
            rows = (await s.scalars(query.limit(limit).offset(offset))).all()
            return [alarm_dict(row) for row in rows], total

    async def get_alarm(self, alarm_id: int) -> dict[str, Any] | None:
        async with self._sessions() as s:
            query = select(AlarmRow).where(AlarmRow.id == alarm_id).options(selectinload(AlarmRow.history))
            row = (await s.scalars(query)).first()
            return alarm_dict(row, with_history=True) if row else None

    async def add_dead_letters(self, letters: list[DeadLetter]) -> None:
        """Keep `letters`, each payload cut to the limit (the reason then says so), and delete the
        oldest rows beyond the row limit: a flood of bad input never grows the table past it."""
        limit = self._letter_limits.payload_bytes
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
            over = await self._delete_letters_over_limit(s)
        self._payloads_cut += cut
        self._letters_pruned["limit"] += over
        self._letters_kept.update(d.source for d in letters)
        if over and not self._told_letters_full:
            self._told_letters_full = True
            log.warning(
                "ops store: the dead letters reached their limit of %d rows (stores.dead_letter_rows); the oldest "
                "are deleted as new ones come, counted in facility_dead_letters_pruned_total",
                self._letter_limits.rows,
            )

    async def prune_dead_letters(self, now: int) -> int:
        """Delete the dead letters older than the retention at `now`, and those beyond the row limit;
        returns how many. The watcher calls it hourly, so that a quiet estate drops them too."""
        retention = self._letter_limits.retention_ns
        async with self._sessions.begin() as s:
            aged = await _deleted(s, delete(DeadLetterRow).where(DeadLetterRow.ts < now - retention))
            over = await self._delete_letters_over_limit(s)
        self._letters_pruned["age"] += aged
        self._letters_pruned["limit"] += over
        if aged or over:
            log.info(
                "ops store: deleted %d dead letters older than %s and %d beyond the newest %d",
                aged,
                _days(retention),
                over,
                self._letter_limits.rows,
            )
        return aged + over

    async def _delete_letters_over_limit(self, s: AsyncSession) -> int:
        """Delete all but the newest `rows` dead letters; returns how many went."""
        first_gone = select(DeadLetterRow.id).order_by(DeadLetterRow.id.desc()).offset(self._letter_limits.rows)
        edge = (await s.execute(first_gone.limit(1))).scalar()
        return 0 if edge is None else await _deleted(s, delete(DeadLetterRow).where(DeadLetterRow.id <= edge))

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The most recent dead letters, newest first."""
        async with self._sessions() as s:
            rows = await s.scalars(select(DeadLetterRow).order_by(DeadLetterRow.id.desc()).limit(limit))
            return [DeadLetter(r.ts, r.source, r.key, r.reason, r.payload) for r in rows]

    async def add_audit(
        self,
        *,
        ts: int,
        actor: str,
        source: str,
        action: str,
        target: str,
        detail: dict[str, Any],
        outcome: str,
        device: str | None = None,
        site_wide: bool = False,
    ) -> int:
        """Record a change asked for; returns its id, so that a `pending` entry can be finished.
        `device` (or `site_wide`) is whose building it concerns, when that is known (see AuditRow)."""
        async with self._sessions.begin() as s:
            row = AuditRow(
                ts=ts,
                actor=actor,
                source=source,
                action=action,
                target=target,
                detail=_json(detail),
                outcome=outcome,
                device=device,
                site_wide=site_wide,
            )
            s.add(row)
            await s.flush()
            return row.id

    async def finish_audit(self, audit_id: int, outcome: str, detail: dict[str, Any]) -> None:
        """Set how a pending entry ended; who, when and where stay as recorded."""
        async with self._sessions.begin() as s:
            row = await s.get(AuditRow, audit_id)
            if row is None:
                raise KeyError(audit_id)
            row.outcome, row.detail = outcome, _json(detail)

    async def audit_log(self, limit: int = 100, devices: Collection[str] | None = None) -> list[AuditEntry]:
        """The most recent audit entries, newest first; with `devices`, only those concerning one of
        them or a site-wide record (what a user limited to their buildings may learn of)."""
        query = select(AuditRow)
        if devices is not None:
            query = query.where(or_(AuditRow.site_wide, AuditRow.device.in_(sorted(devices))))
        async with self._sessions() as s:
            rows = await s.scalars(query.order_by(AuditRow.id.desc()).limit(limit))
            return [
                AuditEntry(r.id, r.ts, r.actor, r.source, r.action, r.target, json.loads(r.detail), r.outcome)
                for r in rows
            ]

    async def active_conditions(self) -> list[tuple[str, str]]:
        """(rule, device) of every alarm still active, so the engine can resume where it stopped."""
        async with self._sessions() as s:
            rows = await s.execute(select(AlarmRow.rule_id, AlarmRow.device_id).where(AlarmRow.active))
            return [(r, d) for r, d in rows.all()]

    @staticmethod
    async def _open(s: AsyncSession, rule_id: str, device_id: str) -> AlarmRow | None:
        query = select(AlarmRow).where(AlarmRow.rule_id == rule_id, AlarmRow.device_id == device_id, AlarmRow.is_open)
        return (await s.scalars(query)).first()


def _unshelve(s: AsyncSession, row: AlarmRow, user: str, source: str, detail: str, ts: int) -> None:
    row.shelved, row.shelved_until, row.shelved_by, row.shelve_reason = False, None, None, None
    row.changed_at = ts
    row.settle()
    s.add(AlarmHistoryRow(alarm_id=row.id, ts=ts, action="unshelved", actor=user, source=source, detail=detail))


_PRIORITY_RANK = case({"emergency": 0, "high": 1, "medium": 2, "low": 3}, value=AlarmRow.priority, else_=4)

SORTS: dict[str, Callable[[], tuple[ColumnElement[Any], ...]]] = {
    "desk": lambda: (AlarmRow.acknowledged.asc(), _PRIORITY_RANK.asc(), AlarmRow.changed_at.desc()),
    "priority": lambda: (_PRIORITY_RANK.asc(), AlarmRow.changed_at.desc()),
    "-priority": lambda: (_PRIORITY_RANK.desc(), AlarmRow.changed_at.desc()),
    "changed_at": lambda: (AlarmRow.changed_at.asc(),),
    "-changed_at": lambda: (AlarmRow.changed_at.desc(),),
    "raised_at": lambda: (AlarmRow.raised_at.asc(),),
    "-raised_at": lambda: (AlarmRow.raised_at.desc(),),
}


def _state_is(state: AlarmState) -> ColumnElement[bool]:
    """The SQL form of AlarmState.of: the alarms that are in `state`."""
    closed = and_(AlarmRow.active == false(), AlarmRow.acknowledged, AlarmRow.shelved == false())
    kept_away = (  # in the order AlarmState.of judges them: the first flag set names the state
        (AlarmState.OUT_OF_SERVICE, AlarmRow.out_of_service),
        (AlarmState.SHELVED, AlarmRow.shelved),
        (AlarmState.SUPPRESSED, AlarmRow.suppressed),
    )
    if state is AlarmState.NORMAL:
        return closed
    ahead = [not_(closed)]
    for named, flag in kept_away:
        if state is named:
            return and_(*ahead, flag)
        ahead.append(flag == false())
    conditions = {
        AlarmState.UNACKNOWLEDGED: and_(AlarmRow.active, AlarmRow.acknowledged == false()),
        AlarmState.ACKNOWLEDGED: and_(AlarmRow.active, AlarmRow.acknowledged),
        AlarmState.RTN_UNACKNOWLEDGED: and_(AlarmRow.active == false(), AlarmRow.acknowledged == false()),
    }
    return and_(*ahead, conditions[state])


async def _deleted(s: AsyncSession, statement: Delete) -> int:
    """Run a bulk delete (the session's objects are not looked at); returns how many rows went."""
    result = await s.execute(statement.execution_options(synchronize_session=False))
    return cast(CursorResult[Any], result).rowcount  # a DELETE's result is a cursor's


def _days(ns: int) -> str:
    return f"{ns / 86_400_000_000_000:g} days"


def _utc(ts: int) -> str:
    return datetime.fromtimestamp(ts / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _json(detail: dict[str, Any]) -> str:
    return json.dumps(detail, ensure_ascii=False, sort_keys=True, default=str)
