from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from facility.store.ops import OpsStore
from testsupport.pg import fresh_database
from testsupport.servers import Mosquitto


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


@pytest.fixture(params=["sqlite", "postgresql"])
async def ops_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty ops store database: each test using it runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'ops.db'}"
        return
    async with fresh_database() as url:
        yield url


@pytest.fixture
async def ops_store(ops_url: str) -> AsyncIterator[OpsStore]:
    """A started ops store on each database (see `ops_url`), closed after the test."""
    store = OpsStore(ops_url, site="t")
    await store.start()
    yield store
    await store.close()
