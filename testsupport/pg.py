"""PostgreSQL for the ops store tests: a fresh database per test on the server this machine runs
(127.0.0.1:5432, trust auth; FACILITY_TEST_PG overrides). An unreachable server fails the test:
the store must be proven on both databases, never skipped on one."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Collection, Iterator
from contextlib import asynccontextmanager

import asyncpg
import pytest

SERVER = os.environ.get("FACILITY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """A new, empty database; yields its SQLAlchemy URL and drops it afterwards."""
    name = f"facility_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = await asyncpg.connect(SERVER, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL is needed for the ops store tests and did not answer at {SERVER}: {exc}")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        base = SERVER.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
        yield f"{base}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@contextlib.contextmanager
def fresh_database_url() -> Iterator[str]:
    """`fresh_database` for code without an event loop of its own (the fault tests' fixtures,
    the benches): it runs on a loop of its own, kept until the database is dropped."""
    loop = asyncio.new_event_loop()
    made = fresh_database()
    try:
        yield loop.run_until_complete(made.__aenter__())
    finally:
        loop.run_until_complete(made.__aexit__(None, None, None))
        loop.close()


def _dsn(url: str) -> str:
    """asyncpg's form of a SQLAlchemy URL."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def alarm_counts(
    url: str, rule: str, device: str | None = None, actions: Collection[str] = ("raised", "raised again")
) -> tuple[int, int]:
    """(alarm rows of `rule`, of `device` if given; their history entries of `actions`, by default
    their activations), asked of the ops store's database directly, past any proxy in front of it."""
    db = await asyncpg.connect(_dsn(url), timeout=10)
    try:
        if not await db.fetchval("SELECT to_regclass('alarms') IS NOT NULL"):
            return 0, 0
        mine = "a.rule_id = $1 AND ($2::text IS NULL OR a.device_id = $2)"
        rows = await db.fetchval(f"SELECT count(*) FROM alarms a WHERE {mine}", rule, device)
        entries = await db.fetchval(
            f"SELECT count(*) FROM alarm_history h JOIN alarms a ON a.id = h.alarm_id WHERE {mine}"
            " AND h.action = ANY($3::text[])",
            rule,
            device,
            list(actions),
        )
        return int(rows), int(entries)
    finally:
        await db.close()


async def end_lock_sessions(url: str) -> int:
    """Terminate the sessions holding advisory locks (a rule worker's lease), as the server does
    with a connection it has lost; how many there were."""
    db = await asyncpg.connect(_dsn(url), timeout=10)
    try:
        query = "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' AND granted"
        return int(await db.fetchval(query))
    finally:
        await db.close()
