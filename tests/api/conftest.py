"""Users of a test system, added to and revoked from the ops store in its data directory; the browser
the desk's tests drive."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from facility.store.ops import OpsStore
from facility.store.users import Role, UserStore
from testsupport.servers import require_binary


class Accounts:
    """The users of the system whose data directory is `data`: they may be added before it starts
    or while it runs (it looks a token up on every request), and revoked while it runs."""

    def __init__(self, data: Path) -> None:
        self.data = data

    async def _store(self) -> OpsStore:
        store = OpsStore(f"sqlite+aiosqlite:///{self.data / 'ops.db'}", site="t")
        await store.start()
        return store

    async def add(self, name: str, role: Role, buildings: Iterable[str] = ()) -> str:
        """The new user's bearer token."""
        return (await self.add_many([(name, role, tuple(buildings))]))[name]

    async def add_many(self, users: Iterable[tuple[str, Role, tuple[str, ...]]]) -> dict[str, str]:
        """Tokens by user name, for (name, role, buildings) each."""
        store = await self._store()
        try:
            return {name: await UserStore(store).add(name, role, buildings) for name, role, buildings in users}
        finally:
            await store.close()

    async def revoke(self, name: str) -> None:
        store = await self._store()
        try:
            assert await UserStore(store).revoke(name)
        finally:
            await store.close()


@pytest.fixture
def accounts(tmp_path: Path) -> Accounts:
    """Users of a system run with the data directory `tmp_path / "data"`."""
    return Accounts(tmp_path / "data")


# A site's `api:` section for tests that send many wrong tokens on purpose (every route, every
# role): from one address, they would otherwise meet the throttle of wrong tokens (tests/api/test_edge.py).
MANY_PROBES = "api: {auth_failure_limit: {burst: 10000, per_second: 1000}}"


# Chromium as the desk's browser tests run it: headless, as root in CI, and never calling home.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium, driven by playwright (which downloads no browser of its own here)."""
    chromium = require_binary("chromium", "chromium")
    async with async_playwright() as pw:
        instance = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        yield instance
        await instance.close()
