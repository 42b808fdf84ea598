"""An ops database made by an older version: indexes that came later, and columns that came later
with a default, are added at start, and the users and alarms already there keep working; a column
that cannot be filled for the rows already there stops the start with its name."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from facility.store.ops import OpsStore
from facility.store.users import Role, UserStore, digest


async def test_a_column_with_a_default_is_added_and_old_rows_keep_working(ops_url: str) -> None:
    store = OpsStore(ops_url)
    await store.start()
    await store.close()
    engine = create_async_engine(ops_url)
    async with engine.begin() as conn:
        await conn.execute(text("ALTER TABLE users DROP COLUMN buildings"))  # as an older version made it
        await conn.execute(text("DROP INDEX alarm_history_by_action_and_time"))
        await conn.execute(
            text("INSERT INTO users (name, role, token_digest, created_at) VALUES ('kim', 'duty', :d, 0)"),
            {"d": digest("kim-token")},
        )
    await engine.dispose()

    upgraded = OpsStore(ops_url)
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
    engine = create_async_engine(ops_url)
    async with engine.connect() as conn:
        indexes = await conn.run_sync(lambda sync: {i["name"] for i in inspect(sync).get_indexes("alarm_history")})
    await engine.dispose()
    assert "alarm_history_by_action_and_time" in indexes


async def test_a_column_that_cannot_be_filled_is_named_and_the_start_refused(ops_url: str) -> None:
    store = OpsStore(ops_url)
    await store.start()
    await store.close()
    engine = create_async_engine(ops_url)
    async with engine.begin() as conn:
        await conn.execute(text("ALTER TABLE audit DROP COLUMN outcome"))
    await engine.dispose()

    again = OpsStore(ops_url)
    with pytest.raises(RuntimeError, match=r"columns audit\.outcome are missing"):
        await again.start()
    await again.close()
