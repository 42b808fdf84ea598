"""PostgreSQL for the ops store tests: a fresh database per test on the server this machine runs
(127.0.0.1:5432, trust auth; FACILITY_TEST_PG overrides). An unreachable server fails the test:
the store must be proven on both databases, never skipped on one."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
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


# The tables of the revisions after the baseline: a database as the release before migrations made
# it has none of them, so a test that fakes one drops them (newest first: later ones refer to older).
LATER_TABLES = ("plan_step_attachments", "equipment_records", "task_attachments")
DROP_LATER_TABLES = tuple(f"DROP TABLE {table}" for table in LATER_TABLES)
