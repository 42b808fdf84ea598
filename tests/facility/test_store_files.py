"""The SQLite files of the stores are the service user's alone (mode 0600): the ops store holds the
users' token digests and what staff did, the telemetry store the estate's readings. SQLite makes a
new database 0644 less the umask; the stores create theirs first, owner-only, and SQLite then gives
the -wal and -shm files it creates the database's mode, as the tests here check. A file an older
version left readable by others is narrowed when a store opens it."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from facility.model import Quality, Reading
from facility.store.ops import OpsStore
from facility.store.sqlite_telemetry import SqliteTelemetry
from facility.store.users import Role, UserStore
from gateway.spool import Spool
from rules.journal import Journal

OWNER_ONLY = 0o600


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """The umask a service usually starts with (systemd's, a shell's): without the stores' care,
    a new database would be readable by every user of the machine."""
    before = os.umask(0o022)
    yield
    os.umask(before)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def beside(db: Path, suffix: str) -> Path:
    return db.with_name(db.name + suffix)


def readings(n: int) -> list[Reading]:
    now = time.time_ns()
    return [Reading("pump-1", "outlet_pressure", 0.4, Quality.GOOD, now + i) for i in range(n)]


async def test_a_new_ops_store_database_is_its_owners_alone(tmp_path: Path) -> None:
    db = tmp_path / "var" / "ops.db"
    store = OpsStore(f"sqlite+aiosqlite:///{db}", site="t")
    await store.start()
    try:
        await UserStore(store).add("ana", Role.DUTY)
        assert mode(db) == OWNER_ONLY
    finally:
        await store.close()


def test_a_new_telemetry_database_and_its_wal_files_are_their_owners_alone(tmp_path: Path) -> None:
    db = tmp_path / "var" / "telemetry.db"
    store = SqliteTelemetry(db)
    try:
        store.write(readings(10))
        files = [db, beside(db, "-wal"), beside(db, "-shm")]
        assert [mode(f) for f in files] == [OWNER_ONLY] * 3  # SQLite gave the WAL files the database's mode
    finally:
        store.close()


def test_store_files_readable_by_others_are_narrowed_when_opened(tmp_path: Path) -> None:
    db = tmp_path / "telemetry.db"
    first = SqliteTelemetry(db)
    try:
        first.write(readings(10))
        files = [db, beside(db, "-wal"), beside(db, "-shm")]
        for f in files:
            f.chmod(0o644)  # as an older version left them
        second = SqliteTelemetry(db)
        second.close()
        assert [mode(f) for f in files] == [OWNER_ONLY] * 3
    finally:
        first.close()


async def test_an_ops_store_database_readable_by_others_is_narrowed_when_opened(tmp_path: Path) -> None:
    db = tmp_path / "ops.db"
    store = OpsStore(f"sqlite+aiosqlite:///{db}", site="t")
    await store.start()
    await store.close()
    db.chmod(0o644)
    again = OpsStore(f"sqlite+aiosqlite:///{db}", site="t")
    await again.start()
    try:
        assert mode(db) == OWNER_ONLY
    finally:
        await again.close()


def test_the_spool_and_the_outcome_journal_are_folders_of_the_service_user_alone(tmp_path: Path) -> None:
    """What waits on disk for a store (readings, alarm outcomes, notifications owed) is kept in
    folders only the service user may enter, whatever mode the files in them get."""
    Spool(tmp_path / "spool")
    Journal(tmp_path / "journal").open()
    assert mode(tmp_path / "spool") == 0o700
    assert mode(tmp_path / "journal") == 0o700
