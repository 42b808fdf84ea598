"""The ops store's schema migrations (Alembic), run at start and by `facility db upgrade`.

Each change to a table is a revision under `versions/`, applied in order and recorded in the
database's `alembic_version`, so that a site upgrading from any earlier release gets every change in
between, and two instances never apply the same one twice. Alembic is configured here, in code: the
package must upgrade its database wherever it is installed (a wheel), with no alembic.ini beside it.

The upgrade holds a lock from before it reads the revision until it commits: on PostgreSQL an
advisory lock of the transaction, as several instances share one server; on SQLite, local to one
machine, `BEGIN IMMEDIATE` (the database's own write lock, which holds across processes). In that
one transaction a failed step, or a schema the caller's check refuses, leaves the database as it was.

A database of the release before migrations (its tables, no `alembic_version`) is adopted: the
columns and indexes that release's hand-written upgrade would have added are added, and it is
stamped with the baseline, from which the later revisions follow as for any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext, MigrationInfo
from alembic.operations import Operations
from alembic.script import Script, ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)

BASELINE = "0001"  # the schema of the first release with migrations
VERSION_TABLE = "alembic_version"
# pg_advisory_xact_lock's key (any 64-bit number the service uses for nothing else): advisory locks
# belong to one database, so stores on other databases of the server do not wait for each other.
PG_LOCK_KEY = 0x0F5_0B5_0001
SQLITE_LOCK_WAIT_MS = 600_000  # how long a SQLite upgrade waits for another process's upgrade
SQLITE_LOCK_SAY_S = 1.0  # a SQLite upgrade waiting this long for the lock says that it waits
PROGRESS_EVERY_S = 15.0  # while a step runs, how often the log says it still does
# What the release before migrations added at start to a database made by an earlier one: an
# adopted database gets whichever it lacks, as it would have got them from that release.
# (Made anew for each adoption: a column belongs to the one table it is added to.)
ADDED_COLUMNS: tuple[tuple[str, Callable[[], sa.Column[Any]]], ...] = (
    ("users", lambda: sa.Column("buildings", sa.Text, nullable=False, server_default="")),
    ("audit", lambda: sa.Column("device", sa.String(200))),
    ("audit", lambda: sa.Column("site_wide", sa.Boolean, nullable=False, server_default=sa.false())),
)
ADDED_INDEXES = (("alarm_history_by_action_and_time", "alarm_history", ("action", "ts")),)


class SchemaRefused(RuntimeError):
    """The database's schema is not one this version can bring to its own: made by a newer version,
    or lacking what no migration adds. The message says what, and what to do."""


@dataclass(frozen=True)
class Schema:
    """Where a database stands against this version's migrations."""

    revision: str | None  # its alembic_version; None: none recorded
    head: str  # the newest revision this version knows
    tables: bool  # it holds ops tables (with no revision: made by the release before migrations)
    known: bool  # this version knows its revision (False: made by a newer version)

    @property
    def newest(self) -> bool:
        return self.revision == self.head

    def describe(self) -> str:
        """One line for `facility db current`."""
        if self.revision is None:
            if self.tables:
                return f"no revision: made by the release before migrations; an upgrade adopts it, to {self.head}"
            return f"empty: an upgrade creates the schema at {self.head}"
        if not self.known:
            return f"revision {self.revision}, unknown to this version (newest {self.head}): made by a newer version"
        if self.newest:
            return f"revision {self.revision} (the newest)"
        return f"revision {self.revision}; the newest is {self.head}: an upgrade is due"


@dataclass(frozen=True)
class Upgraded:
    """What an upgrade did."""

    before: str | None  # the revision found; None: an empty database or one of the release before
    after: str
    adopted: bool  # it was made by the release before migrations
    steps: tuple[str, ...] = ()  # the revisions applied, oldest first

    def describe(self) -> str:
        if self.adopted:
            start = "the release before migrations (adopted)"
        else:
            start = "an empty database" if self.before is None else f"revision {self.before}"
        if not self.steps and not self.adopted:
            return f"at revision {self.after} (the newest): nothing to upgrade"
        applied = f" ({len(self.steps)} step{'s' if len(self.steps) > 1 else ''}: {', '.join(self.steps)})"
        return f"upgraded from {start} to revision {self.after}" + (applied if self.steps else "")


@dataclass
class Progress:
    """Logs each step as Alembic applies it, and, while a long one runs, that it still does: an
    operator watching a start that seems stuck learns which step is busy and for how long."""

    name: str  # the store, as the log names it
    pending: list[str] = field(default_factory=list)  # revisions still to apply, oldest first
    docs: dict[str, str] = field(default_factory=dict)  # by revision: what it does, in a line
    applied_ids: list[str] = field(default_factory=list)
    _since: float = field(default_factory=time.monotonic)

    def expect(self, steps: list[Script]) -> None:
        """The revisions about to be applied, oldest first: the clock of the first starts now."""
        self.pending = [step.revision for step in steps]
        self.docs = {step.revision: step.doc for step in steps}
        self._since = time.monotonic()
        if steps:
            log.info("ops store %s: upgrading to revision %s: %s", self.name, self.pending[-1], ", ".join(self.pending))

    def applied(
        self, ctx: MigrationContext, step: MigrationInfo, heads: Collection[Any], run_args: Mapping[str, Any]
    ) -> None:
        """Alembic's `on_version_apply`: a step (a migration or a stamp) is done."""
        if step.is_stamp or step.up_revision_id is None:
            return
        took = time.monotonic() - self._since
        self._since = time.monotonic()
        self.applied_ids.append(step.up_revision_id)
        if step.up_revision_id in self.pending:
            self.pending.remove(step.up_revision_id)
        log.info(
            "ops store %s: applied revision %s (%s) in %.1f s",
            self.name,
            step.up_revision_id,
            self.docs.get(step.up_revision_id, ""),
            took,
        )

    async def watch(self) -> None:
        """Until cancelled, say every PROGRESS_EVERY_S which step still runs."""
        while True:
            await asyncio.sleep(PROGRESS_EVERY_S)
            if self.pending:
                log.info(
                    "ops store %s: still upgrading: revision %s for %.0f s (%d to go after it)",
                    self.name,
                    self.pending[0],
                    time.monotonic() - self._since,
                    len(self.pending) - 1,
                )


def scripts() -> ScriptDirectory:
    """The revisions shipped with this version."""
    return ScriptDirectory.from_config(_config())


def head() -> str:
    newest = scripts().get_current_head()
    assert newest is not None, "facility/store/migrations/versions holds no revision"
    return newest


def schema(conn: Connection) -> Schema:
    """Where the database behind `conn` stands (it reads, never changes)."""
    revision = MigrationContext.configure(conn).get_current_revision()
    tables = bool(set(inspect(conn).get_table_names()) - {VERSION_TABLE})
    here = scripts()
    try:
        known = revision is None or here.get_revision(revision) is not None
    except CommandError:
        known = False
    newest = here.get_current_head()
    assert newest is not None
    return Schema(revision, newest, tables, known)


async def upgrade(engine: AsyncEngine, name: str, check: Callable[[Connection], None], site: str) -> Upgraded:
    """Bring the database of `engine` to this version's newest revision under the upgrade lock, then
    run `check` (which raises to refuse the result) before committing; logs what it did. `site` is
    the estate upgrading it: a database of one estate, made before records carried their site,
    gives its records that site (revision 0004)."""
    # Alembic says at INFO, three times a start, which dialect it found: this module's lines say
    # what was upgraded; Alembic's warnings still show.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    async with engine.connect() as conn:
        restore = await _lock(conn, name)
        progress = Progress(name)
        watcher = asyncio.create_task(progress.watch(), name="ops store upgrade progress")
        try:
            done = await conn.run_sync(_upgrade, progress, site)
            await conn.run_sync(check)
            await conn.commit()
        except BaseException:
            if restore:  # its settings are the upgrade's: it must not go back to the pool
                await conn.invalidate()
            raise
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        if restore:
            await conn.exec_driver_sql(restore)
    log.info("ops store %s: %s", name, done.describe())
    return done


async def _lock(conn: AsyncConnection, name: str) -> str | None:
    """Take the upgrade lock for the transaction `conn` begins, waiting (and saying so) while
    another instance or process holds it. Returns the statement that undoes what it changed of the
    connection once the transaction is over, if anything."""
    if conn.dialect.name == "postgresql":
        key = {"key": PG_LOCK_KEY}
        if not (await conn.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), key)).scalar():
            log.info("ops store %s: another instance is upgrading it; waiting for it to finish", name)
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), key)
        return None
    if conn.dialect.name != "sqlite":
        raise SchemaRefused(f"the ops store {name}: no upgrade lock for {conn.dialect.name}; use SQLite or PostgreSQL")
    # The driver begins a transaction only before it writes rows, and commits DDL as it goes; with
    # it out of the way the whole upgrade is one transaction, begun with the database's write lock.
    # (The isolation level goes back to the driver's when the pool takes the connection back.)
    busy = (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar()
    await conn.commit()
    await conn.execution_options(isolation_level="AUTOCOMMIT")
    await conn.exec_driver_sql(f"PRAGMA busy_timeout = {SQLITE_LOCK_WAIT_MS}")
    begin = asyncio.ensure_future(conn.exec_driver_sql("BEGIN IMMEDIATE"))
    if not (await asyncio.wait({begin}, timeout=SQLITE_LOCK_SAY_S))[0]:  # another process holds it
        log.info("ops store %s: another process is writing or upgrading it; waiting for it to finish", name)
    await begin
    return f"PRAGMA busy_timeout = {int(busy or 0)}"


def _config(conn: Connection | None = None, progress: Progress | None = None, site: str = "") -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    config.set_main_option("version_table", VERSION_TABLE)
    config.attributes["connection"] = conn
    config.attributes["progress"] = progress
    config.attributes["site"] = site
    return config


def _upgrade(conn: Connection, progress: Progress, site: str) -> Upgraded:
    """Adopt a database of the release before migrations, then apply every revision it lacks."""
    found = schema(conn)
    if not found.known:
        raise SchemaRefused(
            f"the ops database {progress.name} is at revision {found.revision}, which this version does not know"
            f" (its newest is {found.head}): it was upgraded by a newer version; run that version"
        )
    config = _config(conn, progress, site)
    adopted = found.revision is None and found.tables
    if adopted:
        _adopt(conn, progress.name)
        command.stamp(config, BASELINE)
    start = BASELINE if adopted else (found.revision or "base")
    progress.expect(list(reversed(list(scripts().iterate_revisions(found.head, start)))))
    command.upgrade(config, "head")
    return Upgraded(found.revision, found.head, adopted, tuple(progress.applied_ids))


def _adopt(conn: Connection, name: str) -> None:
    """Bring a database of the release before migrations to the baseline: make the tables it lacks
    (that release made only those of the records the command imported: `facility users add` made no
    task tables), and add what that release's start added to an older database, where missing."""
    inspector = inspect(conn)
    tables = set(inspector.get_table_names())
    baseline: sa.MetaData = scripts().get_revision(BASELINE).module.schema()
    made = [table.name for table in baseline.sorted_tables if table.name not in tables]
    baseline.create_all(conn, tables=[baseline.tables[t] for t in made])
    ops = Operations(MigrationContext.configure(conn, opts={"render_as_batch": True}))
    added = [f"table {table}" for table in made]
    for table, make in ADDED_COLUMNS:
        column = make()
        if table in tables and column.name not in {c["name"] for c in inspector.get_columns(table)}:
            with ops.batch_alter_table(table) as batch:
                batch.add_column(column)
            added.append(f"column {table}.{column.name}")
    for index, table, columns in ADDED_INDEXES:
        if table in tables and index not in {i["name"] for i in inspector.get_indexes(table)}:
            ops.create_index(index, table, list(columns))
            added.append(f"index {index}")
    log.info(
        "ops store %s: made by the release before migrations; adopted at revision %s%s",
        name,
        BASELINE,
        f", adding {', '.join(added)}" if added else "",
    )
