"""Fixtures of the fault tests: one `Rig` per test, whose processes are all stopped afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.harness import Rig
from testsupport.pg import fresh_database_url


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faults: the service under faults, counted message by message (tests/faults)")


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    """A broker from deploy/mosquitto.conf, started; and whatever the test starts through it."""
    rig = Rig(tmp_path)
    try:
        yield rig
    finally:
        rig.close()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database (testsupport/pg.py), dropped after the test and after the service."""
    with fresh_database_url() as url:
        yield url
