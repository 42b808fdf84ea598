"""Which process judges a site's rules: the one that holds the site's PostgreSQL advisory lock.

Rule workers of one site (`facility run --parts rules`, several of them) all ask for the lock; one
gets it and judges, the others wait as standbys and ask again every ACQUIRE_EVERY_S. The lock is
held by a connection of its own: when the owner dies — killed, out of memory, its machine gone —
PostgreSQL ends its session and lets the lock go (at once for a process that dies, within the
server's TCP keepalive for a machine that vanishes), and a standby takes it within a second.

The owner checks its connection every CHECK_EVERY_S. One that cannot reach the server may no
longer hold the lock — PostgreSQL may have ended its session and a standby taken over — so it
must stop judging at once rather than raise alarms twice: `held()` raises LeaseLost, and the
runtime stops the process for its supervisor to start again, as a standby.

Why an advisory lock and not a lease table: the server, not a clock, decides when an owner is
gone, so there is no expiry to tune against pauses of the owner, and nothing to clean up after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from facility.readiness import Figure, PartState, State

log = logging.getLogger(__name__)

ACQUIRE_EVERY_S = 0.5  # how often a standby asks for the lock
CHECK_EVERY_S = 1.0  # how often the owner checks that its connection (and so the lock) is there
CHECK_WAIT_S = 3.0  # a check not answered within this means the lock may be gone
LOCK_CLASS = 0x0F5B  # the advisory lock's first key: "a site's rules"; the second is the site's hash


class LeaseLost(RuntimeError):
    """The owner can no longer show that it holds the site's lock: it must stop judging."""


def needs_lease(ops_url: str) -> bool:
    """Whether rule workers on this ops store take turns: on PostgreSQL, where several processes
    may share it; a SQLite store is one machine's, and its one rules process owns the site."""
    return make_url(ops_url).get_backend_name() == "postgresql"


class SiteLease:
    """The lock on one site's rules, asked for until held and then watched."""

    def __init__(self, ops_url: str, site: str) -> None:
        self._engine = create_async_engine(ops_url, poolclass=NullPool)
        self._site = site
        self._conn: AsyncConnection | None = None
        self.owner = False
        self.lost = False  # it was held, and then could no longer be shown to be
        self.since_ns: int | None = None  # when this process took the lock

    async def acquire(self, stopping: asyncio.Event) -> bool:
        """Wait until this process holds the lock (True), or until `stopping` is set (False)."""
        said: str | None = None  # what the log said last: once per change, not every half second
        while not stopping.is_set():
            try:
                if await self._try():
                    log.info("rules of site %s: this process owns them", self._site)
                    return True
                now = "standing by"
                if said != now:
                    log.info("rules of site %s: another process owns them; standing by", self._site)
            except Exception as exc:  # the server is away: a standby keeps asking
                now = "unreachable"
                if said != now:
                    log.warning("rules of site %s: cannot ask for the lease (asking again): %s", self._site, exc)
                await self._drop()
            said = now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), ACQUIRE_EVERY_S)
        return False

    async def _try(self) -> bool:
        if self._conn is None:
            self._conn = await self._engine.connect()
        query = text("SELECT pg_try_advisory_lock(:cls, hashtext(:site))")
        got = bool((await self._conn.execute(query, {"cls": LOCK_CLASS, "site": self._site})).scalar())
        await self._conn.commit()  # the lock is the session's, not the transaction's
        if got:
            self.owner, self.since_ns = True, time.time_ns()
        return got

    async def held(self) -> None:
        """Return never while the lock's connection answers; raise LeaseLost when it does not."""
        assert self._conn is not None and self.owner, "held() is for the owner"
        while True:
            await asyncio.sleep(CHECK_EVERY_S)
            try:
                await asyncio.wait_for(self._conn.execute(text("SELECT 1")), CHECK_WAIT_S)
                await self._conn.commit()
            except Exception as exc:
                self.owner, self.lost = False, True
                raise LeaseLost(f"rules of site {self._site}: the lease's connection failed ({exc!r})") from None

    async def release(self) -> None:
        """Let the lock go (closing its session): a standby takes over at once."""
        self.owner = False
        await self._drop()
        await self._engine.dispose()

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close()
            except Exception:  # a connection that already failed may not close cleanly
                with contextlib.suppress(Exception):
                    await conn.invalidate()

    def figures(self) -> Iterable[Figure]:
        labels = (("site", self._site),)
        yield Figure(
            "rules_owner",
            "1 while this process judges the site's rules, 0 standing by",
            "gauge",
            int(self.owner),
            labels,
        )

    def parts(self) -> Iterable[PartState]:
        name = f"rules lease of {self._site}"
        if self.owner:
            yield PartState(name, "lease", State.UP, self.since_ns)
        else:
            yield PartState(name, "lease", State.DEGRADED, None, "standing by: another process judges this site")
