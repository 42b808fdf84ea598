"""An answer that is not to the read asked for is refused, not decoded. The peer here is a Modbus
TCP server of the test's own that answers wrongly on purpose, as a gateway mixing up late answers
does: with the right transaction id and unit, but another function or too few values."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from pymodbus.client import AsyncModbusTcpClient

from facility.profile import BUILTIN_DIR, load_profiles
from gateway.modbus.planner import plan
from gateway.modbus.reader import WrongAnswer, read_block

PUMP = load_profiles([BUILTIN_DIR])["booster_pump"]
HOLDING = {n: s.modbus for n, s in PUMP.points.items() if s.modbus is not None and s.modbus.table == "holding"}


@asynccontextmanager
async def peer(answer: Callable[[int, bytes], bytes]) -> AsyncIterator[int]:
    """A server answering each request (unit, PDU) with `answer(unit, pdu)`, framed with the
    request's own transaction id and unit; yields its port."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                tid, _, length, unit = struct.unpack(">HHHB", await reader.readexactly(7))
                pdu = answer(unit, await reader.readexactly(length - 1))
                writer.write(struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu)
                await writer.drain()
        except asyncio.IncompleteReadError:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def write_echo(_unit: int, _pdu: bytes) -> bytes:
    return struct.pack(">BHH", 6, 1, 400)  # "register 1 now holds 400": another request's answer


def one_register(_unit: int, _pdu: bytes) -> bytes:
    return struct.pack(">BBH", 3, 2, 400)  # a read answer, but of one register whatever was asked


@pytest.mark.parametrize("answer", [write_echo, one_register], ids=["another function", "too few values"])
async def test_an_answer_to_another_request_is_refused(answer: Callable[[int, bytes], bytes]) -> None:
    (read,) = plan(HOLDING)
    assert read.count > 1
    async with peer(answer) as port:
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
        assert await client.connect()
        try:
            with pytest.raises(WrongAnswer, match=f"read of {read.count} holding"):
                await read_block(client, read, 1)
        finally:
            client.close()


async def test_the_same_peer_answering_rightly_is_read() -> None:
    """The check itself lets a right answer through: the test's peer is a faithful one here."""
    (read,) = plan(HOLDING)

    def right(_unit: int, pdu: bytes) -> bytes:
        _, _, count = struct.unpack(">BHH", pdu)
        return struct.pack(f">BB{count}H", 3, 2 * count, *([0] * count))

    async with peer(right) as port:
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
        assert await client.connect()
        try:
            values = await read_block(client, read, 1)
        finally:
            client.close()
    assert set(values) == {name for name, _ in read.points}
