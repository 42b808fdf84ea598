"""Modbus front end: one server per endpoint (TCP host:port or RTU serial port), one unit id per
device on it, as a real RS-485 bus or Modbus TCP gateway has.

Registers are filled from the device model at the moment a request arrives, through the same
codec the gateway decodes with. Tables a device does not have answer "illegal address". The
common faults act here: `comm_loss` never answers, `slow` answers late, `garbage` answers junk,
`busy` refuses every other request with exception 06.

Writes (functions 05, 06, 15, 16) are decoded with the codec and handed to the model point by
point. Like real devices: a table in which the model takes no writes answers "illegal function";
a write that covers a point the model cannot write, part of a 32-bit value, or an address with no
point answers "illegal address"; a value the model refuses answers "illegal value".
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from contextvars import ContextVar

from pymodbus.constants import ExcCodes
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.server.base import ModbusBaseServer
from pymodbus.server.requesthandler import ServerRequestHandler
from pymodbus.simulator import DataType, SimData, SimDevice

from facility.codec import decode, pack, register_count
from facility.profile import ModbusField, Profile
from facility.site import ModbusBinding
from simulators.models import DeviceModel
from simulators.models.base import WriteRefused

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
    address: int,
    _count: int,
    registers: list[int],
    set_values: list[int] | list[bool] | None,
) -> ExcCodes | None:
    """Fill the requested table's registers from the model just before the server answers."""
    while "comm_loss" in model.faults:  # noqa: ASYNC110  (hold the request: the master times out, as on a dead bus)
        await asyncio.sleep(COMM_LOSS_CHECK_S)
    if "slow" in model.faults:
        await asyncio.sleep(SLOW_REPLY_S)
    if "busy" in model.faults:
        model.busy_turn = not model.busy_turn
        if model.busy_turn:
            return ExcCodes.DEVICE_BUSY
    table = _TABLE_OF_FUNCTION.get(func_code)
    if set_values is not None:
        return _write(model, fields, table, address, [int(v) for v in set_values])
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


def _write(
    model: DeviceModel, fields: Sequence[tuple[str, ModbusField]], table: str | None, address: int, values: list[int]
) -> ExcCodes | None:
    """Hand the points a master writes to the model; the registers follow from the model's values."""
    if table not in ("holding", "coil") or not any(f.table == table and n in model.WRITABLE for n, f in fields):
        return ExcCodes.ILLEGAL_FUNCTION  # a read-only table of this device
    end = address + len(values)
    covered = [
        (n, f) for n, f in fields if f.table == table and f.address < end and f.address + register_count(f) > address
    ]
    inside = [(n, f) for n, f in covered if address <= f.address and f.address + register_count(f) <= end]
    owned = {f.address + i for _, f in inside for i in range(register_count(f))}
    if len(inside) < len(covered) or owned != set(range(address, end)):
        return ExcCodes.ILLEGAL_ADDRESS  # part of a 32-bit value, or a register with no point
    if any(n not in model.WRITABLE for n, _ in inside):
        return ExcCodes.ILLEGAL_ADDRESS  # checked first, so that a refused write changes nothing
    for name, f in inside:
        start = f.address - address
        try:
            model.write(name, decode(f, values[start : start + register_count(f)]))
        except WriteRefused as exc:
            return ExcCodes.ILLEGAL_VALUE if exc.bad_value else ExcCodes.ILLEGAL_ADDRESS
    return None


def build_server(binding: ModbusBinding, devices: Sequence[tuple[int, Profile, DeviceModel]]) -> ModbusBaseServer:
    """A server on the binding's endpoint answering for each (unit id, profile, model)."""
    sim_devices = []
    for unit, profile, model in devices:
        fields = [(name, spec.modbus) for name, spec in profile.points.items() if spec.modbus]
        sim_devices.append(SimDevice(unit, simdata=_blocks(profile), action=functools.partial(_serve, model, fields)))
    if binding.serial:  # an absent unit on a serial line stays silent (pymodbus logs the request)
        return _SerialServer(
            sim_devices,
            port=binding.serial,
            baudrate=binding.baudrate,
            parity=binding.parity,
            stopbits=binding.stopbits,
        )
    # A Modbus TCP gateway answers for a unit id it has no device for with exception 0B.
    absent = SimDevice(0, simdata=[SimData(0, count=65535, datatype=DataType.REGISTERS)], action=_absent)
    return _TcpServer([*sim_devices, absent], address=(binding.host, binding.port))


def bound_port(server: ModbusBaseServer) -> int:
    """The TCP port a started server listens on: for an endpoint of port 0, the one the system
    chose, which nothing else can have taken (binding a port, letting go and binding it again can
    lose it to another process in between)."""
    transport = server.transport
    assert isinstance(transport, asyncio.Server), "a started Modbus TCP server"
    return int(transport.sockets[0].getsockname()[1])


_ANSWERING: ContextVar[ModbusPDU | None] = ContextVar("answering", default=None)


class _AnswerAsAsked(ServerRequestHandler):
    """pymodbus frames an answer with the transaction id and unit of the connection's latest
    request, read after the answer is ready. An answer held back (`comm_loss`, `slow`) would then
    carry the id of a newer request, and the master would take it for that one: a real device
    answers each request as itself. Each request is handled in a task of its own, so the request
    is kept in a context variable and stamped on its answer."""

    async def handle_request(self) -> None:
        _ANSWERING.set(self.last_pdu)
        await super().handle_request()

    def server_send(self, pdu: ModbusPDU | None, addr: tuple[str, int] | None) -> None:
        request = _ANSWERING.get()
        if pdu is not None and request is not None:
            pdu.transaction_id, pdu.dev_id = request.transaction_id, request.dev_id
        super().server_send(pdu, addr)


class _TcpServer(ModbusTcpServer):
    def callback_new_connection(self) -> ServerRequestHandler:
        return _AnswerAsAsked(self, self.trace_packet, self.trace_pdu, self.trace_connect)


class _SerialServer(ModbusSerialServer):
    def callback_new_connection(self) -> ServerRequestHandler:
        return _AnswerAsAsked(self, self.trace_packet, self.trace_pdu, self.trace_connect)


async def _absent(*_: object) -> ExcCodes:
    return ExcCodes.GATEWAY_NO_RESPONSE
