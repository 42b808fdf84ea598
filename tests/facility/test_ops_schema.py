"""An ops database this version did not make. One of a release before migrations (no
alembic_version) is adopted: the indexes and the columns with a default that release would have
added are added at start, and the users and alarms already there keep working. A column that no
migration adds stops the start with its name, and a refused adoption leaves the database as it was;
a revision this version does not know (a newer version upgraded it) stops the start too."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from facility.store.ops import OpsStore, SchemaRefused
from facility.store.users import Role, UserStore, digest
from testsupport.ops_db import previous_release_made


async def made_then_changed(url: str, *statements: str) -> None:
    """A database this version made, then changed by `statements` (as an older one, or a person)."""
    store = OpsStore(url, site="t")
    await store.start()
    await store.close()
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        for statement in statements:
            await conn.execute(text(statement))
    await engine.dispose()


async def inspected(url: str, table: str) -> tuple[set[str], set[str], set[str]]:
    """The database's tables, and the columns and indexes of `table`."""
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        found = await conn.run_sync(
            lambda sync: (
                set(inspect(sync).get_table_names()),
                {c["name"] for c in inspect(sync).get_columns(table)},
                {i["name"] or "" for i in inspect(sync).get_indexes(table)},
            )
        )
    await engine.dispose()
    return found


async def test_an_older_release_gets_its_columns_and_indexes_and_old_rows_keep_working(ops_url: str) -> None:
    await previous_release_made(
        ops_url,
        "ALTER TABLE users DROP COLUMN buildings",  # as a release older still made it
        "DROP INDEX alarm_history_by_action_and_time",
        f"INSERT INTO users (name, role, token_digest, created_at) VALUES ('kim', 'duty', '{digest('kim-token')}', 0)",
    )

    upgraded = OpsStore(ops_url, site="t")
    await upgraded.start()
    try:
        users = UserStore(upgraded)
        kim = await users.find("kim-token")
        assert kim is not None and (kim.name, kim.role, kim.buildings) == ("kim", Role.DUTY, None)
        await users.add("li", Role.VIEWER, ["B1"])
        li = [u for u, _ in await users.all() if u.name == "li"]
        assert li[0].buildings == frozenset({"B1"})
    finally:
        await upgraded.close()
    _, _, indexes = await inspected(ops_url, "alarm_history")
    assert "alarm_history_by_action_and_time" in indexes


async def test_a_column_no_migration_adds_is_named_and_the_start_refused(ops_url: str) -> None:
    await made_then_changed(ops_url, "ALTER TABLE audit DROP COLUMN outcome")

    again = OpsStore(ops_url, site="t")
    with pytest.raises(SchemaRefused, match=r"lacks audit\.outcome, which no migration adds"):
        await again.start()
    await again.close()


async def test_a_refused_adoption_leaves_the_database_as_it_was(ops_url: str) -> None:
    await previous_release_made(
        ops_url, *(f"ALTER TABLE audit DROP COLUMN {column}" for column in ("device", "site_wide", "outcome"))
    )

    again = OpsStore(ops_url, site="t")
    with pytest.raises(SchemaRefused, match=r"lacks audit\.outcome"):
        await again.start()
    await again.close()
    tables, columns, _ = await inspected(ops_url, "audit")
    assert "alembic_version" not in tables  # not stamped: the same start is refused again, not half done
    assert "device" not in columns and "site_wide" not in columns


async def test_a_revision_this_version_does_not_know_is_refused(ops_url: str) -> None:
    await made_then_changed(ops_url, "UPDATE alembic_version SET version_num = '9999_from_a_newer_version'")

    again = OpsStore(ops_url, site="t")
    with pytest.raises(SchemaRefused, match=r"revision 9999_from_a_newer_version, which this version does not know"):
        await again.start()
    await again.close()
