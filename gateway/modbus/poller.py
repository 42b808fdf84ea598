"""Polls the devices on one Modbus bus: one connection and one lock per bus, many unit ids.

Why each rule:
- A device that stops answering is *demoted*: tried again after five of its timeouts, then at a
  doubling interval up to 30 s, with no retry, so it costs its bus at most one timeout per
  demoted cycle (a fifth of the bus at worst) and the others keep their rate.
- Exception 06 (busy) is retried a few times with backoff; 04, 0A and 0B (device failure, gateway
  path unavailable, target failed to respond) mark the device offline like a timeout does.
- Exception 02/03 (illegal address or value) is a profile that does not match the device: the
  point(s) responsible are found, reported once as a configuration error (log and dead letter)
  and left out; the rest of the device keeps being read.
- A write goes over the same connection, under the same lock as a poll: a serial line carries one
  request at a time, and a TCP gateway in front of one may not queue. It is read back before it
  counts as done, and its outcome leaves the polling state alone: the next poll judges the device.
- Every request is counted (sent, unanswered, busy-retried, refused with an exception) in plain
  integers: the poller is a readiness `Reporter`, asked only when /readyz or /metrics is read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient, ModbusBaseClient
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ModbusPDU

from facility.aio import raise_if_cancelled
from facility.codec import decode, encode
from facility.model import Quality, Reading, Value
from facility.profile import ModbusField, Profile
from facility.readiness import Figure, PartState, State
from facility.site import Device, ModbusBinding
from facility.writes import BadValue, DeviceOffline, DeviceRefused, NotConfirmed, UnknownTarget
from gateway.modbus.planner import Read, plan
from gateway.modbus.reader import ExceptionResponse, WrongAnswer, read_block

log = logging.getLogger(__name__)

StatusHandler = Callable[[str, bool], None]
DeadLetterSink = Callable[[str, str, str, bytes | bytearray | str], None]

BUSY = 0x06
OFFLINE_CODES = {0x04, 0x0A, 0x0B}
CONFIG_CODES = {0x02, 0x03}
BUSY_RETRIES = 3
BUSY_BACKOFF_S = 0.05
DEMOTED_MAX_S = 30.0  # the longest wait between tries of a device that does not answer
DEMOTED_TIMEOUTS = 5  # a demoted device is tried again after at least this many of its timeouts

T = TypeVar("T")


class DeviceUnavailable(Exception):
    pass


@dataclass
class _Polled:
    device: Device
    fields: dict[str, ModbusField]
    reads: list[Read]
    next_due: float = 0.0
    online: bool | None = None  # unknown until the first poll
    failures: int = 0  # polls in a row without an answer
    broken: dict[str, str] = field(default_factory=dict)  # point -> why it is left out

    @property
    def interval(self) -> float:
        assert self.device.modbus is not None
        return self.device.modbus.interval


class BusPoller:
    """Polls every device on one bus (TCP endpoint or serial line) in turn, each at its own interval."""

    def __init__(
        self,
        binding: ModbusBinding,
        devices: Sequence[tuple[Device, Profile]],
        publish: Callable[[list[Reading]], None],
        on_status: StatusHandler,
        dead_letter: DeadLetterSink,
    ) -> None:
        self.endpoint = binding.endpoint
        timeout = max(d.modbus.timeout for d, _ in devices if d.modbus)
        self._client: ModbusBaseClient
        if binding.serial:
            self._client = AsyncModbusSerialClient(
                binding.serial,
                baudrate=binding.baudrate,
                parity=binding.parity,
                stopbits=binding.stopbits,
                timeout=timeout,
                retries=0,
            )
        else:
            self._client = AsyncModbusTcpClient(binding.host, port=binding.port, timeout=timeout, retries=0)
        self.devices = []
        for device, profile in devices:
            fields = {n: p.modbus for n, p in profile.points.items() if p.modbus}
            self.devices.append(_Polled(device, fields, plan(fields)))
        self._by_id = {p.device.id: p for p in self.devices}
        self._publish = publish
        self._on_status = on_status
        self._dead_letter = dead_letter
        self._lock = asyncio.Lock()  # one request on the bus at a time: a poll or a write
        self.requests = 0  # requests sent (reads, writes, retries): a figure, and for benchmarks
        self.timeouts = 0  # requests that got no answer: timed out, or lost with the connection
        self.retries = 0  # requests sent again because the device was busy (exception 06)
        self.exceptions = 0  # requests answered with a Modbus exception, of any code
        self._answered_ns: int | None = None  # UTC ns of the last request answered with data
        self._trouble = ""  # why the last failed poll failed, for the readiness view

    async def run(self) -> None:
        try:
            while True:
                raise_if_cancelled()
                now = time.monotonic()
                for polled in self.devices:
                    if polled.next_due <= now:
                        async with self._lock:
                            await self._poll(polled)
                        polled.next_due = self._next_due(polled, now)
                wake = min(p.next_due for p in self.devices)
                await asyncio.sleep(max(0.0, wake - time.monotonic()))
        finally:
            self._client.close()

    @staticmethod
    def _next_due(polled: _Polled, now: float) -> float:
        if polled.failures:
            # Wait at least five timeouts before trying again, so a dead device costs the others
            # at most a fifth of the bus; then back off further while it stays dead.
            assert polled.device.modbus is not None
            first = max(polled.interval, DEMOTED_TIMEOUTS * polled.device.modbus.timeout)
            return now + min(DEMOTED_MAX_S, first * 2 ** (polled.failures - 1))
        return max(polled.next_due + polled.interval, now)  # keep the rhythm; never catch up in a burst

    async def write(self, device_id: str, point: str, value: Value) -> Value:
        """Write one point between polls and read it back; returns the value the device now holds.

        Holding registers are written with function 06, or 16 for two-register values; coils with
        05. Raises BadValue (not encodable), DeviceOffline, DeviceRefused or NotConfirmed. The
        caller checks the allow-list: this carries out whatever it is given.
        """
        polled = self._by_id.get(device_id)
        field = polled.fields.get(point) if polled else None
        if polled is None or field is None or polled.device.modbus is None:
            raise UnknownTarget(f"no Modbus point {device_id} {point} on {self.endpoint}")
        try:
            words = encode(field, value)
        except ValueError as exc:
            raise BadValue(f"{point} cannot carry {value!r}: {exc}") from None
        unit = polled.device.modbus.unit
        async with self._lock:
            try:
                if not self._client.connected and not await self._client.connect():
                    raise DeviceOffline(f"{device_id}: cannot connect to {self.endpoint}")
                if field.table == "coil":
                    response = await self._ask(self._client.write_coil(field.address, bool(words[0]), device_id=unit))
                elif len(words) == 1:
                    response = await self._ask(self._client.write_register(field.address, words[0], device_id=unit))
                else:
                    response = await self._ask(self._client.write_registers(field.address, words, device_id=unit))
                if response.isError():
                    self.exceptions += 1
                    code = response.exception_code
                    raise DeviceRefused(f"{device_id} refused the write to {point}: exception {code:#04x}", code)
                confirmed = (await self._ask(read_block(self._client, plan({point: field})[0], unit)))[point]
            except ExceptionResponse as exc:
                raise DeviceRefused(
                    f"{device_id} took the write but refused to read {point} back: {exc}", exc.code
                ) from None
            except (TimeoutError, ModbusException, OSError) as exc:
                raise DeviceOffline(
                    f"{device_id} on {self.endpoint} did not answer: {exc or type(exc).__name__}"
                ) from None
        expected = decode(field, words)
        if confirmed != expected:
            raise NotConfirmed(f"{device_id} {point} reads back {confirmed!r} after writing {expected!r}")
        self._publish([Reading(device_id, point, confirmed, Quality.GOOD, time.time_ns())])
        return confirmed

    async def _poll(self, polled: _Polled) -> None:
        device = polled.device
        assert device.modbus is not None
        values: dict[str, Value] = {}
        try:
            if not self._client.connected and not await self._client.connect():
                raise DeviceUnavailable(f"cannot connect to {self.endpoint}")
            for read in list(polled.reads):
                values.update(await self._read(polled, read))
        except (TimeoutError, ModbusException, DeviceUnavailable, OSError) as exc:
            polled.failures += 1
            self._trouble = f"{device.id}: {exc or type(exc).__name__}"
            if polled.online is not False:
                log.warning("device %s on %s stopped answering: %s", device.id, self.endpoint, exc)
                ts = time.time_ns()
                self._publish([Reading(device.id, p, None, Quality.NO_COMM, ts) for p in polled.fields])
                self._set_online(polled, False)
            return
        polled.failures = 0
        ts = time.time_ns()
        good, bad = Quality.GOOD, Quality.BAD
        self._publish([Reading(device.id, n, v, good if v is not None else bad, ts) for n, v in values.items()])
        if polled.online is not True:
            if polled.online is False:
                log.info("device %s on %s answers again", device.id, self.endpoint)
            self._set_online(polled, True)

    async def _read(self, polled: _Polled, read: Read) -> dict[str, Value]:
        assert polled.device.modbus is not None
        unit = polled.device.modbus.unit
        for attempt in range(BUSY_RETRIES + 1):
            try:
                return await self._ask(read_block(self._client, read, unit))
            except ExceptionResponse as exc:
                if exc.code == BUSY and attempt < BUSY_RETRIES:
                    self.retries += 1
                    await asyncio.sleep(BUSY_BACKOFF_S * 2**attempt)
                    continue
                if exc.code in CONFIG_CODES:
                    return await self._isolate(polled, read, exc)
                raise DeviceUnavailable(str(exc)) from None
        raise DeviceUnavailable(f"busy after {BUSY_RETRIES} retries")

    async def _isolate(self, polled: _Polled, read: Read, error: ExceptionResponse) -> dict[str, Value]:
        """Read the points of a refused block one by one; leave out the ones the device refuses."""
        assert polled.device.modbus is not None
        values: dict[str, Value] = {}
        for name, spec in read.points:
            single = Read(read.table, spec.address, plan({name: spec})[0].count, ((name, spec),))
            try:
                values.update(await self._ask(read_block(self._client, single, polled.device.modbus.unit)))
            except ExceptionResponse as exc:
                if exc.code not in CONFIG_CODES:
                    raise DeviceUnavailable(str(exc)) from None
                self._drop_point(polled, name, spec, exc)
        if len(read.points) > 1 or polled.broken:
            polled.reads = plan({n: f for n, f in polled.fields.items() if n not in polled.broken})
        return values

    def _drop_point(self, polled: _Polled, name: str, spec: ModbusField, exc: ExceptionResponse) -> None:
        device = polled.device.id
        reason = (
            f"configuration error: {device} refuses point {name!r} ({spec.table} {spec.address}, "
            f"exception {exc.code:#04x}); check the profile's address and type. The point is left out."
        )
        log.error(reason)
        polled.broken[name] = reason
        self._dead_letter("modbus", f"{device}/{name}", reason, "")
        self._publish([Reading(device, name, None, Quality.BAD, time.time_ns())])

    def _set_online(self, polled: _Polled, online: bool) -> None:
        polled.online = online
        self._on_status(polled.device.id, online)

    async def _ask(self, request: Awaitable[T]) -> T:
        """One request on the bus and its answer, counted for `figures()`."""
        self.requests += 1
        try:
            answer = await request
        except ExceptionResponse:
            self.exceptions += 1
            raise
        except WrongAnswer:
            raise  # an answer, though not to this request: neither unanswered nor data
        except (TimeoutError, ModbusException, OSError):
            self.timeouts += 1
            raise
        if not (isinstance(answer, ModbusPDU) and answer.isError()):
            self._answered_ns = time.time_ns()
        return answer

    def parts(self) -> Iterable[PartState]:
        """The bus is up while any device on it answered its last poll: one silent device among
        answering ones is that device's trouble (its offline event and alarm say so), not the
        bus's. Down when none did, or none has been polled yet."""
        name = f"modbus {self.endpoint}"
        if any(p.online for p in self.devices):
            silent = [p.device.id for p in self.devices if p.online is False]
            detail = f"not answering: {', '.join(silent)}" if silent else ""
            return [PartState(name, "modbus_bus", State.UP, self._answered_ns, detail)]
        detail = f"no device answered its last poll ({self._trouble})" if self._trouble else "not polled yet"
        return [PartState(name, "modbus_bus", State.DOWN, self._answered_ns, detail)]

    def figures(self) -> Iterable[Figure]:
        bus = (("bus", self.endpoint),)
        return [
            Figure(
                "modbus_requests_total", "Modbus requests sent (reads, writes, retries).", "counter", self.requests, bus
            ),
            Figure(
                "modbus_timeouts_total",
                "Modbus requests that got no answer: timed out, or lost with the connection.",
                "counter",
                self.timeouts,
                bus,
            ),
            Figure(
                "modbus_retries_total",
                "Modbus requests sent again because the device was busy (exception 06).",
                "counter",
                self.retries,
                bus,
            ),
            Figure(
                "modbus_exceptions_total",
                "Modbus requests answered with an exception, of any code.",
                "counter",
                self.exceptions,
                bus,
            ),
        ]
