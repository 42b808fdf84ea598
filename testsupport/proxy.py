"""Ops store databases that a test can make really unreachable and reachable again, without mocks:
PostgreSQL behind a TCP proxy that can be cut (connections reset, new ones refused) without
stopping the server other tests share, and SQLite whose folder is taken away."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Protocol

from sqlalchemy.engine import make_url

from testsupport.pg import fresh_database

CHUNK = 65536


class TcpProxy:
    """Listens on 127.0.0.1 (a free port, kept across a cut) and forwards every connection to
    `host:port`. `cut()` stops listening and resets every open connection, as a server that went
    away does; `restore()` listens again on the same port."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    @property
    def up(self) -> bool:
        return self._server is not None

    def url(self, url: str) -> str:
        """A SQLAlchemy URL of the target server, through the proxy instead."""
        return make_url(url).set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Refuse new connections and reset the open ones."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        if server is not None:
            await server.wait_closed()  # also waits for the connections' handlers to finish

    async def restore(self) -> None:
        if self._server is None:
            await self.start()

    async def stop(self) -> None:
        await self.cut()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        if self._server is None:  # cut while connecting
            for w in (writer, up_writer):
                w.transport.abort()
            return
        self._writers.update((writer, up_writer))
        pipes = [asyncio.create_task(_pipe(reader, up_writer)), asyncio.create_task(_pipe(up_reader, writer))]
        self._pipes.update(pipes)
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pipe in pipes:
                pipe.cancel()
            for w in (writer, up_writer):
                w.transport.abort()
                self._writers.discard(w)
            self._pipes.difference_update(pipes)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()


@asynccontextmanager
async def proxied(url: str) -> AsyncIterator[tuple[str, TcpProxy]]:
    """A proxy in front of the server of `url` (a SQLAlchemy URL), and the URL through it; the
    proxy stops afterwards."""
    parsed = make_url(url)
    proxy = TcpProxy(parsed.host or "127.0.0.1", parsed.port or 5432)
    await proxy.start()
    try:
        yield proxy.url(url), proxy
    finally:
        await proxy.stop()


class Outage(Protocol):
    """An ops store database that a test makes unreachable, and reachable again."""

    url: str

    async def cut(self) -> None: ...

    async def restore(self) -> None: ...


class SqliteOutage:
    """A SQLite database in `folder`, cut by moving the folder away and putting a plain file in its
    place, so that no connection can open it and no store can create it. SQLite keeps files that
    are open working, so cut it only while no store has it open (before a start, after a close)."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._away = folder.with_name(folder.name + "-away")
        self.url = f"sqlite+aiosqlite:///{folder / 'ops.db'}"

    async def cut(self) -> None:
        if self._folder.is_dir():
            self._folder.rename(self._away)
        self._folder.write_text("the ops store's folder is away\n")

    async def restore(self) -> None:
        self._folder.unlink(missing_ok=True)
        if self._away.is_dir():
            self._away.rename(self._folder)


class PostgresOutage:
    """A fresh PostgreSQL database behind a TcpProxy: cut at any time, open connections included."""

    def __init__(self, url: str, proxy: TcpProxy) -> None:
        self.url = url
        self._proxy = proxy

    async def cut(self) -> None:
        await self._proxy.cut()

    async def restore(self) -> None:
        await self._proxy.restore()


@asynccontextmanager
async def outage(kind: str, folder: Path) -> AsyncIterator[Outage]:
    """An ops store database of `kind` ("sqlite", kept in `folder`, or "postgresql"), reachable."""
    if kind == "sqlite":
        yield SqliteOutage(folder / "ops")
        return
    async with fresh_database() as url, proxied(url) as (through, proxy):
        yield PostgresOutage(through, proxy)
