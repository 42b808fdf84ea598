"""Carries out planned reads on a Modbus client and decodes the points in them."""

from __future__ import annotations

from collections.abc import Sequence

from pymodbus.client import ModbusBaseClient

from facility.codec import decode, register_count
from facility.model import Value
from gateway.modbus.planner import Read


class ExceptionResponse(Exception):
    """The device answered a read with a Modbus exception."""

    def __init__(self, read: Read, code: int) -> None:
        self.read, self.code = read, code
        super().__init__(f"exception {code:#04x} reading {read.count} {read.table} from {read.address}")


async def read_block(client: ModbusBaseClient, read: Read, unit: int) -> dict[str, Value]:
    """The points of one planned read; raises ExceptionResponse, or the client's own errors
    (timeouts, lost connection)."""
    call = {
        "holding": client.read_holding_registers,
        "input": client.read_input_registers,
        "coil": client.read_coils,
        "discrete": client.read_discrete_inputs,
    }[read.table]
    response = await call(read.address, count=read.count, device_id=unit)
    if response.isError():
        raise ExceptionResponse(read, response.exception_code)
    bits = read.table in ("coil", "discrete")
    raw = [int(b) for b in response.bits[: read.count]] if bits else response.registers
    return {
        name: decode(spec, raw[spec.address - read.address : spec.address - read.address + register_count(spec)])
        for name, spec in read.points
    }


async def read_points(client: ModbusBaseClient, reads: Sequence[Read], unit: int) -> dict[str, Value]:
    """Each point's value (None where the device says "not available")."""
    values: dict[str, Value] = {}
    for read in reads:
        values.update(await read_block(client, read, unit))
    return values
