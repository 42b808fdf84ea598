"""Carries out planned reads on a Modbus client and decodes the points in them."""

from __future__ import annotations

from collections.abc import Sequence

from pymodbus.client import ModbusBaseClient
from pymodbus.exceptions import ModbusIOException

from facility.codec import decode, register_count
from facility.model import Value
from gateway.modbus.planner import Read


class ExceptionResponse(Exception):
    """The device answered a read with a Modbus exception."""

    def __init__(self, read: Read, code: int) -> None:
        self.read, self.code = read, code
        super().__init__(f"exception {code:#04x} reading {read.count} {read.table} from {read.address}")


class WrongAnswer(ModbusIOException):
    """An answer that is not to the read asked for: another function, or too few values. A gateway
    that mixes up late answers does this; taking one for the read would show another device's values."""


FUNCTION_OF_TABLE = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}


async def read_block(client: ModbusBaseClient, read: Read, unit: int) -> dict[str, Value]:
    """The points of one planned read; raises ExceptionResponse, WrongAnswer, or the client's own
    errors (timeouts, lost connection). pymodbus matches an answer to its request by transaction id
    and unit alone, so the function and the count are checked here."""
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
    if response.function_code != FUNCTION_OF_TABLE[read.table] or len(raw) != read.count:
        raise WrongAnswer(
            f"unit {unit} answered function {response.function_code} with {len(raw)} values to a read of "
            f"{read.count} {read.table} from {read.address}"
        )
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
