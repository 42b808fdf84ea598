"""A Modbus TCP tap: a proxy between a master and a server that counts, from the wire, what the
master asked and what came back, so that a test can hold the poller's own counts against an
observer that does not share its code. It can also swallow requests: a bus that stops answering
without the late answers a held request would bring once the fault clears."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from facility.netutil import free_port

HEADER = 7  # MBAP: transaction id (2), protocol (2), length (2), unit (1); `length` counts unit + PDU


async def _frames(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    """Whole Modbus TCP frames (header and PDU) until the connection closes."""
    while True:
        try:
            header = await reader.readexactly(HEADER)
            pdu = await reader.readexactly(int.from_bytes(header[4:6], "big") - 1)
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        yield header + pdu


class ModbusTap:
    def __init__(self, server_port: int) -> None:
        self._server_port = server_port
        self.port = free_port()
        self.requests = 0  # frames the master sent
        self.answers = 0  # frames the server sent back
        self.exceptions = 0  # of which exception answers (function code with the high bit set)
        self.busy = 0  # of which exception 06, "busy"
        self.swallowed = 0  # requests not passed on while `swallow` was set
        self.swallow = False
        self._server: asyncio.Server | None = None
        self._pumps: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> ModbusTap:
        self._server = await asyncio.start_server(self._connected, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        for pump in list(self._pumps):
            pump.cancel()
        for pump in list(self._pumps):
            with contextlib.suppress(asyncio.CancelledError):
                await pump
        await self._server.wait_closed()

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self._server_port)
        except OSError:
            writer.close()
            return
        pumps = [
            asyncio.create_task(self._requests(reader, server_writer)),
            asyncio.create_task(self._answers(server_reader, writer)),
        ]
        self._pumps.update(pumps)
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)  # either side closed
        finally:
            for pump in pumps:
                pump.cancel()
                self._pumps.discard(pump)
            for end in (writer, server_writer):
                end.close()

    async def _requests(self, reader: asyncio.StreamReader, to_server: asyncio.StreamWriter) -> None:
        async for frame in _frames(reader):
            self.requests += 1
            if self.swallow:
                self.swallowed += 1
                continue
            to_server.write(frame)
            await to_server.drain()

    async def _answers(self, reader: asyncio.StreamReader, to_master: asyncio.StreamWriter) -> None:
        async for frame in _frames(reader):
            self.answers += 1
            if frame[HEADER] & 0x80:
                self.exceptions += 1
                self.busy += frame[HEADER + 1] == 0x06
            to_master.write(frame)
            await to_master.drain()
