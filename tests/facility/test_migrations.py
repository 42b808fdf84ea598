"""The ops store's migrations, on SQLite and on PostgreSQL: a database the release before migrations
made, full of rows, is adopted and upgraded (by `OpsStore.start` and by `facility db upgrade`) with
every row still readable through the stores; two instances upgrading one database at once end with
one schema and no error; `facility db current` tells where a database stands; and the newest
revision makes exactly the schema the models declare, so that a model changed without a migration
fails here rather than on a site.

The previous release's database is a fixture (tests/facility/fixtures/ops_previous.*.sql): its
schema as that release made it on each engine, and the rows it wrote through its own stores."""

from __future__ import annotations

import asyncio
import sys
from asyncio.subprocess import PIPE, STDOUT
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect, select, text
from sqlalchemy.ext.asyncio import create_async_engine
from typer.testing import CliRunner

from facility.errors import NotFound
from facility.records import NewAlarm
from facility.store import migrations
from facility.store.dead_letters import DeadLetterLimits
from facility.store.ops import OpsStore
from facility.store.plans import PlanStore
from facility.store.schedules import ScheduleStore
from facility.store.site_scope import SiteColumn
from facility.store.tables import Base
from facility.store.tasks import TaskStore
from facility.store.users import Role, UserStore
from facility_app.cli import app

FIXTURES = Path(__file__).parent / "fixtures"
TS = 1_790_000_000 * 1_000_000_000
MINUTE = 60 * 1_000_000_000
# The fixture's dead letters are older than a site's retention: a started store would prune them.
KEEP_LETTERS = DeadLetterLimits(retention_ns=100 * 365 * 1440 * MINUTE, rows=1000, payload_bytes=4096)


def statements(path: Path) -> list[str]:
    """The SQL statements of a fixture file (one per `;` at a line's end), its comments left out."""
    sql = "\n".join(line for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith("--"))
    return [s.strip() for s in sql.split(";\n") if s.strip()]


async def previous_release(url: str) -> None:
    """Make the database at `url` as the release before migrations left it: its schema, its rows."""
    engine = create_async_engine(url)
    schema = FIXTURES / f"ops_previous.{engine.dialect.name}.sql"
    async with engine.begin() as conn:
        for statement in statements(schema) + statements(FIXTURES / "ops_previous.data.sql"):
            await conn.exec_driver_sql(statement)
    await engine.dispose()


async def assert_previous_rows_readable(store: OpsStore) -> None:
    """Every row of ops_previous.data.sql, read back through the stores' own methods."""
    alarms = {a.rule: a for a in await store.alarms.list_alarms(include_closed=True)}
    assert set(alarms) == {"sump-high", "pressure-low", "mains-fail"}
    sump = await store.alarms.get_alarm(alarms["sump-high"].id)
    assert sump is not None and sump.state == "normal" and sump.title.zh == "集水坑高水位"
    assert [h.action for h in sump.history] == ["raised", "acknowledged", "comment", "returned to normal"]
    assert alarms["pressure-low"].shelved and alarms["pressure-low"].shelve_reason == "valve work"
    assert (await store.alarms.out_of_service())["lift-b2-1"]["reason"] == "annual service"

    task = await TaskStore(store).get(1, TS)
    assert task is not None and task.assignee == "li" and task.status == "in_progress"
    checklist = [(i.text.en, i.done) for i in task.checklist]
    assert checklist == [("Read the level", True), ("Run the pump", False)]
    assert [n.text for n in task.notes] == ["level normal"] and len(task.history) == 5
    plan = await PlanStore(store).get(1, TS)
    assert plan is not None and plan.alarm == alarms["mains-fail"].id
    assert [(s.id, s.done_by) for s in plan.steps] == [("call", "ana"), ("gen", None)]

    users = UserStore(store)
    m1 = await users.find("m1-token-of-the-previous-release")
    assert m1 is not None and (m1.role, m1.buildings) == (Role.MANAGER, frozenset({"B1"}))
    assert {u.name for u, _ in await users.all()} == {"ana", "m1"}

    audit = await store.audit.entries()
    assert [(e.actor, e.outcome) for e in audit] == [("bo", "refused"), ("eng", "ok"), ("eng", "ok")]
    assert await store.audit.entries(devices={"pump-b2-1"}) == []  # whose building is unknown: whole-site managers only
    assert [d.reason for d in await store.letters.recent()] == ["bad value", "not JSON"]
    marks = await ScheduleStore(store.sessions).marks()
    assert marks[("weekly-round", "pump-b2-1")].occurrence == TS - 1440 * MINUTE


async def assert_new_rows_written(store: OpsStore) -> None:
    """The upgraded database takes new rows, with the ids after the old ones and the new columns."""
    alarm, action = await store.alarms.raise_alarm(
        NewAlarm("fire", "panel-b1", "emergency", "火警", "Fire", "", "", TS)
    )
    assert action == "raised" and alarm.id == 4
    await store.audit.add(
        ts=TS, actor="ana", source="", action="write", target="pump-b2-1/x", detail={}, outcome="ok", device="pump-b2-1"
    )
    assert [e.actor for e in await store.audit.entries(devices={"pump-b2-1"})] == ["ana"]


def revisions(sync: Connection) -> list[str]:
    return [row[0] for row in sync.execute(text("SELECT version_num FROM alembic_version"))]


async def stored_revisions(url: str) -> list[str]:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        found = await conn.run_sync(revisions)
    await engine.dispose()
    return found


def facility(*args: str) -> tuple[int, str]:
    """Run the `facility` command; the tests call it in a thread (asyncio.to_thread), as it runs an
    event loop of its own."""
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout + result.stderr


def where(url: str, tmp_path: Path) -> list[str]:
    """`--site` (and `--data`) options naming the database at `url` as the command line finds it."""
    site = tmp_path / "site.yaml"
    if url.startswith("sqlite"):  # ops_url's SQLite file is ops.db in tmp_path: a `--data` folder's
        site.write_text("site: {id: t, name: Test estate, timezone: UTC}\ndevices: []\n")
        return ["--site", str(site), "--data", str(tmp_path)]
    site.write_text(f'site: {{id: t, name: Test estate, timezone: UTC}}\nstores: {{ops: "{url}"}}\ndevices: []\n')
    return ["-c", str(site)]


async def test_the_previous_release_is_adopted_at_start_with_all_its_rows(
    ops_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    await previous_release(ops_url)
    caplog.set_level("INFO", logger="facility.store.migrations")
    store = OpsStore(ops_url, site="t", dead_letters=KEEP_LETTERS)
    await store.start()
    try:
        await assert_previous_rows_readable(store)
        await assert_new_rows_written(store)
        assert (await store.schema()).newest
    finally:
        await store.close()
    assert await stored_revisions(ops_url) == [migrations.head()]
    said = caplog.text
    assert "made by the release before migrations; adopted at revision 0001, adding column audit.device" in said
    assert f"upgraded from the release before migrations (adopted) to revision {migrations.head()}" in said

    again = OpsStore(ops_url, site="t")  # a second start finds nothing to do
    await again.start()
    await again.close()
    assert "nothing to upgrade" in caplog.text


async def test_the_previous_release_is_upgraded_by_facility_db_upgrade(ops_url: str, tmp_path: Path) -> None:
    await previous_release(ops_url)
    options = where(ops_url, tmp_path)
    code, said = await asyncio.to_thread(facility, "db", "current", *options)
    assert code == 1 and "no revision: made by the release before migrations" in said

    code, said = await asyncio.to_thread(facility, "db", "upgrade", *options)
    assert code == 0, said
    assert f"upgraded from the release before migrations (adopted) to revision {migrations.head()}" in said
    code, said = await asyncio.to_thread(facility, "db", "current", *options)
    assert code == 0 and said.strip() == f"revision {migrations.head()} (the newest)"
    code, said = await asyncio.to_thread(facility, "db", "upgrade", *options)
    assert code == 0 and "nothing to upgrade" in said

    store = OpsStore(ops_url, site="t", dead_letters=KEEP_LETTERS)
    await store.start()
    try:
        await assert_previous_rows_readable(store)
        await assert_new_rows_written(store)
    finally:
        await store.close()


async def test_a_database_of_one_estate_gives_every_record_that_estates_site(ops_url: str) -> None:
    """Revision 0004 on a database full of one estate's rows: each row, in every table that has
    the column, carries the site id of the estate that upgraded it, and another estate upgrading
    nothing sees none of them."""
    await previous_release(ops_url)
    store = OpsStore(ops_url, site="t", dead_letters=KEEP_LETTERS)
    await store.start()
    other = OpsStore(ops_url, site="elsewhere", dead_letters=KEEP_LETTERS)
    await other.start()
    try:
        async with store.sessions() as session:
            tables = [m.local_table for m in Base.registry.mappers if issubclass(m.class_, SiteColumn)]
            sites = {t.name: set((await session.execute(select(t.c.site).distinct())).scalars()) for t in tables}
        filled = {name for name, found in sites.items() if found}
        assert filled >= {"alarms", "alarm_history", "tasks", "out_of_service", "audit", "schedule_marks"}
        assert all(found == {"t"} for found in sites.values() if found), sites
        assert await other.alarms.list_alarms(include_closed=True) == []
        assert await other.alarms.out_of_service() == {}
        assert await other.audit.entries() == [] and await other.letters.recent() == []
        assert await ScheduleStore(other.sessions).marks() == {}
        with pytest.raises(NotFound):
            await TaskStore(other).get(1, TS)
        await assert_previous_rows_readable(store)
    finally:
        await store.close()
        await other.close()


async def test_facility_db_current_on_an_empty_database_then_after_the_upgrade(ops_url: str, tmp_path: Path) -> None:
    options = where(ops_url, tmp_path)
    code, said = await asyncio.to_thread(facility, "db", "current", *options)
    assert code == 1 and said.strip() == f"empty: an upgrade creates the schema at {migrations.head()}"
    if ops_url.startswith("sqlite"):
        assert not (tmp_path / "ops.db").exists()  # reading it made no file

    code, said = await asyncio.to_thread(facility, "db", "upgrade", *options)
    assert code == 0 and f"upgraded from an empty database to revision {migrations.head()}" in said
    code, said = await asyncio.to_thread(facility, "db", "current", *options)
    assert code == 0 and said.strip() == f"revision {migrations.head()} (the newest)"


@pytest.mark.parametrize("made_by", ["previous release", "nothing"])
async def test_two_instances_upgrading_at_once_end_with_one_schema_and_no_error(
    ops_url: str, made_by: str, caplog: pytest.LogCaptureFixture
) -> None:
    if made_by == "previous release":
        await previous_release(ops_url)
    caplog.set_level("INFO", logger="facility.store.migrations")
    # Two instances of the service: a store each, and so an engine and connections each.
    stores = [OpsStore(ops_url, site="t", dead_letters=KEEP_LETTERS) for _ in range(2)]
    try:
        await asyncio.gather(*(s.start() for s in stores))
        assert [(await s.schema()).newest for s in stores] == [True, True]
        if made_by == "previous release":
            await assert_previous_rows_readable(stores[1])
            assert caplog.text.count("adopted at revision 0001") == 1
    finally:
        for s in stores:
            await s.close()
    assert await stored_revisions(ops_url) == [migrations.head()]
    assert caplog.text.count("nothing to upgrade") == 1  # the one that waited found it done


async def test_two_processes_upgrading_at_once_end_with_one_schema_and_no_error(ops_url: str, tmp_path: Path) -> None:
    """`facility db upgrade` twice at once, as two hosts (or a start and an operator) would."""
    await previous_release(ops_url)
    command = [sys.executable, "-m", "facility_app", "db", "upgrade", *where(ops_url, tmp_path)]
    runs = [await asyncio.create_subprocess_exec(*command, stdout=PIPE, stderr=STDOUT) for _ in range(2)]
    said = [(await run.communicate())[0].decode() for run in runs]
    assert [run.returncode for run in runs] == [0, 0], said
    adopted = f"upgraded from the release before migrations (adopted) to revision {migrations.head()}"
    assert sorted("nothing to upgrade" in s for s in said) == [False, True] and any(adopted in s for s in said)
    assert await stored_revisions(ops_url) == [migrations.head()]
    store = OpsStore(ops_url, site="t", dead_letters=KEEP_LETTERS)
    await store.start()
    try:
        await assert_previous_rows_readable(store)
    finally:
        await store.close()


async def test_the_newest_revision_makes_the_schema_the_models_declare(ops_url: str) -> None:
    store = OpsStore(ops_url, site="t")
    await store.start()
    await store.close()
    engine = create_async_engine(ops_url)

    def differences(sync: Connection) -> list[Any]:
        # Alembic reads SQLite's DEFAULT '' back as a different default from the models' "": the
        # server defaults are compared on PostgreSQL, which reports them as it stores them.
        defaults = sync.dialect.name != "sqlite"
        context = MigrationContext.configure(sync, opts={"compare_type": True, "compare_server_default": defaults})
        return compare_metadata(context, Base.metadata)

    async with engine.connect() as conn:
        found = await conn.run_sync(differences)
    await engine.dispose()
    assert found == []


async def test_an_adopted_database_takes_the_tables_its_release_did_not_make(ops_url: str) -> None:
    """The release before made only the tables of the records its command imported (`facility
    users add` made no task tables): adoption makes the rest."""
    await previous_release(ops_url)
    engine = create_async_engine(ops_url)
    async with engine.begin() as conn:
        for table in ("task_checklist", "task_history", "tasks", "schedule_marks"):
            await conn.execute(text(f"DROP TABLE {table}"))
    await engine.dispose()
    store = OpsStore(ops_url, site="t")
    await store.start()
    try:
        with pytest.raises(NotFound, match="no task 1"):
            await TaskStore(store).get(1, TS)
        assert await ScheduleStore(store.sessions).marks() == {}
    finally:
        await store.close()
    engine = create_async_engine(ops_url)
    async with engine.connect() as conn:
        tables = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    await engine.dispose()
    assert {"tasks", "task_history", "task_checklist", "schedule_marks"} <= tables


class HeldLock:
    """The upgrade lock held by someone else, as another instance mid-upgrade holds it: on
    PostgreSQL the advisory lock, on SQLite the database's write lock (a write transaction)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine = create_async_engine(url)
        self._conn: Any = None

    async def __aenter__(self) -> HeldLock:
        self._conn = await self._engine.connect()
        if self._engine.dialect.name == "postgresql":
            await self._conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": migrations.PG_LOCK_KEY})
        else:
            await self._conn.commit()
            await self._conn.execution_options(isolation_level="AUTOCOMMIT")
            await self._conn.exec_driver_sql("BEGIN IMMEDIATE")
        return self

    async def release(self) -> None:
        if self._conn is not None:
            if self._engine.dialect.name == "postgresql":
                await self._conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": migrations.PG_LOCK_KEY})
            else:
                await self._conn.exec_driver_sql("ROLLBACK")
            await self._conn.close()
            self._conn = None

    async def __aexit__(self, *exc: object) -> None:
        await self.release()
        await self._engine.dispose()


async def said(caplog: pytest.LogCaptureFixture, words: str, timeout: float = 30) -> None:
    """Until the log holds `words` (a test fails on the timeout, never on a slow machine's pace)."""

    async def heard() -> None:
        # The log is written by the code under test: there is no event of its own to wait on.
        while words not in caplog.text:  # noqa: ASYNC110
            await asyncio.sleep(0.02)

    await asyncio.wait_for(heard(), timeout)


async def test_an_upgrade_waits_for_the_lock_another_holds_and_says_so(
    ops_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A second instance starting while the first upgrades: it logs that it waits, does nothing
    until the lock is let go, then finds its own work to do (here: the whole schema)."""
    caplog.set_level("INFO", logger="facility.store.migrations")
    store = OpsStore(ops_url, site="t")
    try:
        async with HeldLock(ops_url) as lock:
            upgrading = asyncio.create_task(store.upgrade())
            await said(caplog, "upgrading it; waiting for it to finish")
            assert not upgrading.done()
            assert await stored_revisions_or_none(ops_url) is None  # nothing applied while it waits
            await lock.release()
            done = await asyncio.wait_for(upgrading, 60)
        every = tuple(reversed([step.revision for step in migrations.scripts().walk_revisions()]))
        assert done.after == migrations.head() and done.steps == every  # the whole schema, oldest first
    finally:
        await store.close()


async def stored_revisions_or_none(url: str) -> list[str] | None:
    """The revisions recorded, or None while there is no alembic_version table (read without a lock:
    PostgreSQL reads past the advisory lock, SQLite past a write lock)."""
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        tables = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
        found = await conn.run_sync(revisions) if migrations.VERSION_TABLE in tables else None
    await engine.dispose()
    return found


async def test_a_long_step_is_said_to_run_with_its_revision_and_time(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An operator watching a start that seems stuck learns which step runs, and for how long."""
    monkeypatch.setattr(migrations, "PROGRESS_EVERY_S", 0.05)
    caplog.set_level("INFO", logger="facility.store.migrations")
    progress = migrations.Progress("ops.db")
    progress.expect([migrations.scripts().get_revision(migrations.BASELINE)])
    watching = asyncio.create_task(progress.watch())
    try:
        await said(
            caplog, f"ops store ops.db: still upgrading: revision {migrations.BASELINE} for 0 s (0 to go after it)"
        )
    finally:
        watching.cancel()
    assert f"ops store ops.db: upgrading to revision {migrations.BASELINE}" in caplog.text
