"""Modbus front end: one server per endpoint (TCP host:port or RTU serial port), one unit id per
device on it, as a real RS-485 bus or Modbus TCP gateway has.

Registers are filled from the device model at the moment a request arrives, through the same
codec the gateway decodes with. Tables a device does not have answer "illegal address". The
common faults act here: `comm_loss` never answers, `slow` answers late, `garbage` answers junk.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.server.base import ModbusBaseServer
from pymodbus.simulator import DataType, SimData, SimDevice

from facility.codec import pack, register_count
from facility.profile import ModbusField, Profile
from facility.site import ModbusBinding
from simulators.models import DeviceModel

SLOW_REPLY_S = 3.0  # longer than the usual 1 s poll timeout: a slow device looks dead to a hasty master
COMM_LOSS_CHECK_S = 0.1

_TABLES = ("coil", "discrete", "holding", "input")  # SimDevice's order of non-shared blocks
_TABLE_OF_FUNCTION = {
    1: "coil",
    5: "coil",
    15: "coil",
    2: "discrete",
    3: "holding",
    6: "holding",
    16: "holding",
    4: "input",
}


def _blocks(profile: Profile) -> tuple[list[SimData], list[SimData], list[SimData], list[SimData]]:
    ends = dict.fromkeys(_TABLES, 0)
    for spec in profile.points.values():
        if spec.modbus is not None:
            f = spec.modbus
            ends[f.table] = max(ends[f.table], f.address + register_count(f))
    blocks: list[list[SimData]] = []
    for table in _TABLES:
        if table in ("coil", "discrete"):
            # Bits are packed 16 to a register, bit 0 first. SimDevice wants a bit block even for
            # a table the device lacks; `_serve` refuses requests to such a table.
            words = max(1, (ends[table] + 15) // 16)
            blocks.append([SimData(0, count=words * 16, values=False, datatype=DataType.BITS)])
        elif ends[table] == 0:
            blocks.append([SimData(0, datatype=DataType.INVALID)])
        else:
            blocks.append([SimData(0, count=ends[table], values=0, datatype=DataType.REGISTERS)])
    return blocks[0], blocks[1], blocks[2], blocks[3]


async def _serve(
    model: DeviceModel,
    fields: Sequence[tuple[str, ModbusField]],
    func_code: int,
    start_address: int,
    _address: int,
    _count: int,
    registers: list[int],
    set_values: list[int] | list[bool] | None,
) -> ExcCodes | None:
    """Fill the requested table's registers from the model just before the server answers."""
    while "comm_loss" in model.faults:  # noqa: ASYNC110  (hold the request: the master times out, as on a dead bus)
        await asyncio.sleep(COMM_LOSS_CHECK_S)
    if "slow" in model.faults:
        await asyncio.sleep(SLOW_REPLY_S)
    if set_values is not None:
        return ExcCodes.ILLEGAL_FUNCTION  # the simulated plant takes no writes yet
    table = _TABLE_OF_FUNCTION.get(func_code)
    if not any(f.table == table for _, f in fields):
        return ExcCodes.ILLEGAL_ADDRESS
    bits = table in ("coil", "discrete")
    if "garbage" in model.faults:
        for i in range(len(registers)):
            registers[i] = model.rng.getrandbits(16)
        return None
    values = model.values
    packed = pack((f, values.get(name)) for name, f in fields if f.table == table and name in values)
    for (_, address), word in packed.items():
        if bits:
            index, mask = address // 16 - start_address, 1 << (address % 16)
            registers[index] = (registers[index] & ~mask) | (mask if word else 0)
        else:
            registers[address - start_address] = word
    return None


def build_server(binding: ModbusBinding, devices: Sequence[tuple[int, Profile, DeviceModel]]) -> ModbusBaseServer:
    """A server on the binding's endpoint answering for each (unit id, profile, model)."""
    sim_devices = []
    for unit, profile, model in devices:
        fields = [(name, spec.modbus) for name, spec in profile.points.items() if spec.modbus]
        sim_devices.append(SimDevice(unit, simdata=_blocks(profile), action=functools.partial(_serve, model, fields)))
    if binding.serial:  # an absent unit on a serial line stays silent (pymodbus logs the request)
        return ModbusSerialServer(
            sim_devices,
            port=binding.serial,
            baudrate=binding.baudrate,
            parity=binding.parity,
            stopbits=binding.stopbits,
        )
    # A Modbus TCP gateway answers for a unit id it has no device for with exception 0B.
    absent = SimDevice(0, simdata=[SimData(0, count=65535, datatype=DataType.REGISTERS)], action=_absent)
    return ModbusTcpServer([*sim_devices, absent], address=(binding.host, binding.port))


async def _absent(*_: object) -> ExcCodes:
    return ExcCodes.GATEWAY_NO_RESPONSE
