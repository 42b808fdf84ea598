"""Runs the simulated plant of a site: models, their Modbus servers and MQTT publishers."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass

from pymodbus.server import ModbusTcpServer

from facility.aio import cancel_all
from facility.model import Value
from facility.mqtt import MqttClient
from facility.profile import Profile
from facility.site import Device, Site
from simulators.modbus_front import build_server
from simulators.models import MODELS, DeviceModel, UnknownFault
from simulators.mqtt_front import payload

log = logging.getLogger(__name__)

STEP_S = 0.1  # model time step


class UnknownDevice(KeyError):
    pass


@dataclass
class SimulatedDevice:
    device: Device
    profile: Profile
    model: DeviceModel
    next_publish: float = 0.0


class SimulatorHost:
    def __init__(self, site: Site, seed: int | None = None) -> None:
        self.site = site
        rng = random.Random(seed)
        self.devices: dict[str, SimulatedDevice] = {}
        for device in site.devices:
            model_cls = MODELS.get(device.type)
            if model_cls is None:
                log.warning("no simulator for device type %r (%s); it will not answer", device.type, device.id)
                continue
            model = model_cls(device.id, random.Random(rng.random()))
            self.devices[device.id] = SimulatedDevice(device, site.profile_of(device), model)
        self._servers: list[ModbusTcpServer] = []
        self._mqtt: MqttClient | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def values(self, device_id: str) -> dict[str, Value]:
        return dict(self._get(device_id).model.values)

    def inject(self, device_id: str, fault: str) -> None:
        """Give a device a fault; raises UnknownDevice or UnknownFault."""
        sim = self._get(device_id)
        sim.model.inject(fault)
        self._step_now(sim)
        log.info("fault %s injected on %s", fault, device_id)

    def clear(self, device_id: str, fault: str | None = None) -> None:
        sim = self._get(device_id)
        if fault is not None and fault not in sim.model.FAULTS:
            raise UnknownFault(f"{sim.model.type} has no fault {fault!r}")
        sim.model.clear(fault)
        self._step_now(sim)
        log.info("faults %s cleared on %s", fault or "all", device_id)

    def _get(self, device_id: str) -> SimulatedDevice:
        try:
            return self.devices[device_id]
        except KeyError:
            raise UnknownDevice(device_id) from None

    def _step_now(self, sim: SimulatedDevice) -> None:
        """Apply a fault change at once; MQTT devices report on change, as real ones do."""
        sim.model.step(0.0, _day_seconds())
        if sim.device.mqtt and self._mqtt is not None:
            self._publish(sim, time.monotonic())

    def _publish(self, sim: SimulatedDevice, now: float) -> None:
        assert sim.device.mqtt is not None and self._mqtt is not None
        self._mqtt.publish(sim.device.mqtt.topic, payload(sim.profile, sim.model), qos=sim.device.mqtt.qos)
        sim.next_publish = now + sim.device.mqtt.interval

    async def start(self) -> None:
        t = _day_seconds()
        for sim in self.devices.values():
            sim.model.step(0.0, t)
        endpoints: dict[tuple[str, int], list[tuple[int, Profile, DeviceModel]]] = {}
        for sim in self.devices.values():
            if sim.device.modbus:
                key = (sim.device.modbus.host, sim.device.modbus.port)
                endpoints.setdefault(key, []).append((sim.device.modbus.unit, sim.profile, sim.model))
        for (host, port), members in endpoints.items():
            server = build_server(host, port, members)
            await server.serve_forever(background=True)
            self._servers.append(server)
        if any(sim.device.mqtt for sim in self.devices.values()):
            broker = self.site.broker
            self._mqtt = MqttClient(broker.host, broker.port, username=broker.username, password=broker.password)
            await self._mqtt.start()
        self._tasks.append(asyncio.create_task(self._run(), name="simulators"))

    async def stop(self) -> None:
        await cancel_all(self._tasks)
        for server in self._servers:
            await server.shutdown()
        if self._mqtt is not None:
            await self._mqtt.stop()

    async def _run(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(STEP_S)
            now = time.monotonic()
            t = _day_seconds()
            for sim in self.devices.values():
                sim.model.step(now - last, t)
                if sim.device.mqtt and self._mqtt is not None and now >= sim.next_publish:
                    self._publish(sim, now)
            last = now


def _day_seconds() -> float:
    now = time.localtime()
    return now.tm_hour * 3600 + now.tm_min * 60 + now.tm_sec
