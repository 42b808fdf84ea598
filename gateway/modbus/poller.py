"""Polls the devices on one Modbus bus: one connection and one lock per bus, many unit ids.

A device that stops answering has its points published once as "no communication" and its
status changed to offline; the next good answer brings it back online.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient, ModbusBaseClient
from pymodbus.exceptions import ModbusException

from facility.model import Quality, Reading
from facility.profile import Profile
from facility.site import Device, ModbusBinding
from gateway.modbus.planner import Read, plan
from gateway.modbus.reader import ExceptionResponse, read_points

log = logging.getLogger(__name__)

StatusHandler = Callable[[str, bool], None]


class DeviceUnavailable(Exception):
    pass


@dataclass
class _Polled:
    device: Device
    reads: list[Read]
    next_due: float = 0.0
    online: bool | None = None  # unknown until the first poll
    points: list[str] = field(default_factory=list)


class BusPoller:
    """Polls every device on one bus (TCP endpoint or serial line) in turn, each at its own interval."""

    def __init__(
        self,
        binding: ModbusBinding,
        devices: Sequence[tuple[Device, Profile]],
        publish: Callable[[list[Reading]], None],
        on_status: StatusHandler,
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
        self._devices = [
            _Polled(
                device,
                plan({n: p.modbus for n, p in profile.points.items() if p.modbus}),
                points=list(profile.points),
            )
            for device, profile in devices
        ]
        self._publish = publish
        self._on_status = on_status

    async def run(self) -> None:
        try:
            while True:
                now = time.monotonic()
                for polled in self._devices:
                    if polled.next_due <= now:
                        await self._poll(polled)
                        assert polled.device.modbus is not None
                        polled.next_due = max(polled.next_due + polled.device.modbus.interval, now)
                wake = min(p.next_due for p in self._devices)
                await asyncio.sleep(max(0.0, wake - time.monotonic()))
        finally:
            self._client.close()

    async def _poll(self, polled: _Polled) -> None:
        device = polled.device
        assert device.modbus is not None
        try:
            if not self._client.connected and not await self._client.connect():
                raise DeviceUnavailable(f"cannot connect to {self.endpoint}")
            values = await read_points(self._client, polled.reads, device.modbus.unit)
        except (TimeoutError, ModbusException, ExceptionResponse, DeviceUnavailable, OSError) as exc:
            if polled.online is not False:
                log.warning("device %s on %s stopped answering: %s", device.id, self.endpoint, exc)
                ts = time.time_ns()
                self._publish([Reading(device.id, p, None, Quality.NO_COMM, ts) for p in polled.points])
                self._set_online(polled, False)
            return
        ts = time.time_ns()
        good, bad = Quality.GOOD, Quality.BAD
        self._publish([Reading(device.id, n, v, good if v is not None else bad, ts) for n, v in values.items()])
        if polled.online is not True:
            self._set_online(polled, True)

    def _set_online(self, polled: _Polled, online: bool) -> None:
        polled.online = online
        self._on_status(polled.device.id, online)
