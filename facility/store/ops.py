"""The ops store's database: its engine and sessions (SQLite by default, PostgreSQL by URL), its
schema (created or upgraded by facility.store.migrations, then checked against the tables), and
whether it answers; the records live in one module per job, reached from here:
`ops.alarms` (facility.store.alarms), `ops.pages` (the desk's alarm pages, facility.store.alarm_pages),
`ops.letters` (dead letters, facility.store.dead_letters) and `ops.audit` (facility.store.audit).
Tasks, plans, users, equipment and schedule marks are stores of their own over `ops.sessions`.

The store may be down: `start(wait=False)` returns at once and reaches the database in the
background (creating or upgrading the schema when it answers), so that ingest and the rules run
without it. While it does not answer, every call raises `OpsUnavailable` instead of a driver's
error, which the API answers with 503 and rules.outcomes waits out (outcomes are journaled on local
disk meanwhile). A watcher checks the database every few seconds while nothing else uses it, so
that `available` and the readiness view stay honest, and deletes the dead letters past their
retention once an hour.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, inspect, select
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Dialect, ExceptionContext, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from facility.errors import Unavailable
from facility.model import now_ns
from facility.readiness import Figure, PartState, State
from facility.store import migrations
from facility.store.alarm_pages import AlarmPages
from facility.store.alarms import CHATTER_LIMIT, AlarmStore
from facility.store.audit import AuditLog
from facility.store.dead_letters import DEAD_LETTER_LIMITS, DeadLetterLimits, DeadLetterStore
from facility.store.migrations import SchemaRefused
from facility.store.site_scope import SiteSession
from facility.store.sqlite_telemetry import private_file
from facility.store.tables import Base, EstateRow

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0  # a PostgreSQL server that does not answer: give up a connection attempt after this
REACH_MAX_S = 10.0  # the longest pause between attempts to reach a store that is down
CHECK_EVERY_S = 5.0  # while up and idle, how often the watcher checks that the store still answers
PRUNE_EVERY_NS = 3600 * 1_000_000_000  # how often the watcher deletes the dead letters past their retention
# SQLite's words for a database that cannot be reached or written (its other errors are bugs or data)
_SQLITE_UNREACHABLE = ("unable to open database", "disk i/o error", "database is locked", "readonly", "disk is full")


class OpsUnavailable(Unavailable, ConnectionError):
    """The ops store does not answer (down, unreachable, or not reached yet since the start): what
    needs it must wait or retry (503 at the API). Also a ConnectionError (the command line reports it
    as such), never a ValueError: nothing about the request is wrong."""


class _Sessions(async_sessionmaker[AsyncSession]):
    """The store's session maker, shared with the stores of other records (tasks, plans, users):
    a session asked for while `start` has not reached the database yet raises OpsUnavailable,
    rather than reach a database that is down or lacks its tables."""

    def __init__(self, engine: AsyncEngine, store: OpsStore) -> None:
        super().__init__(engine, expire_on_commit=False, sync_session_class=SiteSession, info={"site": store.site})
        self._store = store

    def __call__(self, **local_kw: Any) -> AsyncSession:
        if not self._store.ready:
            raise OpsUnavailable(self._store.unavailable_text())
        return super().__call__(**local_kw)


class OpsStore:
    """One ops database and the stores of its records (see the module's docstring), seen as the
    estate `site` sees it: its sessions read and write that site's records only
    (facility.store.site_scope), so that many estates may share one database."""

    def __init__(
        self,
        url: str,
        *,
        site: str,
        site_name: str = "",
        desk_url: str = "",
        chatter_limit: int = CHATTER_LIMIT,
        check_every_s: float = CHECK_EVERY_S,
        dead_letters: DeadLetterLimits = DEAD_LETTER_LIMITS,
    ) -> None:
        if not site:
            raise ValueError("an ops store needs the site id of its estate")
        self.site = site
        self._estate = (site_name, desk_url)  # what the company view shows of this estate
        self._check_every_s = check_every_s
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
        self.pages = AlarmPages(self._sessions)
        self.alarms = AlarmStore(self._sessions, self.pages, chatter_limit)
        self.letters = DeadLetterStore(self._sessions, dead_letters)
        self.audit = AuditLog(self._sessions)
        self._ready = True  # no start under way that has not reached the database: sessions may be handed out
        self._up = asyncio.Event()  # the last thing tried on the database worked
        self._detail = "not reached yet"  # why it is not up
        self._failing = False  # an attempt to reach it failed, and none has worked since
        self._last_success_ns: int | None = None
        self._watcher: asyncio.Task[None] | None = None

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        """For the stores of the records (alarms, tasks, plans, ...) that keep their tables on `Base`."""
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
                    await self.letters.prune(now_ns())
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
        await self._register()
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
        return await migrations.upgrade(self._engine, self._name, self._check_schema, self.site)

    async def _register(self) -> None:
        """Record this estate among those that use the database, with its name and desk as the site
        file says them now: the company view lists the estates from here."""
        try:  # a plain session: the store's own are handed out once this start is done
            async with AsyncSession(self._engine) as s, s.begin():
                row = await s.get(EstateRow, self.site, with_for_update=True)
                name, desk_url = self._estate
                if row is None:
                    s.add(EstateRow(site=self.site, name=name, desk_url=desk_url, started_at=now_ns()))
                else:
                    row.name, row.desk_url, row.started_at = name, desk_url, now_ns()
        except IntegrityError:  # another process of the estate registered it at the same moment
            pass

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
        return self.letters.figures()

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        await self._engine.dispose()
