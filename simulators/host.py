"""Runs the simulated plant of a site: models, their Modbus servers and MQTT connections."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pymodbus.server.base import ModbusBaseServer

from facility.aio import cancel_all
from facility.profile import Profile
from facility.site import Device, ModbusBinding, Site
from simulators.modbus_front import bound_port, build_server
from simulators.models import MODELS, DeviceModel
from simulators.mqtt_front import DevicePasswords, MqttDevice

log = logging.getLogger(__name__)

STEP_S = 0.1  # model time step (real seconds)


class UnknownDevice(KeyError):
    pass


@dataclass
class SimulatedDevice:
    device: Device
    profile: Profile
    model: DeviceModel
    mqtt: MqttDevice | None = None


class SimulatorHost:
    """The plant of a site. With `any_port` (the demo), each Modbus TCP bus listens on 127.0.0.1 on
    a port the system chooses, never one already in use on the machine; once started, `site` is
    the site with those ports, for the gateway and the banner."""

    def __init__(self, site: Site, seed: int | None = None, *, any_port: bool = False) -> None:
        self.site = site
        self._any_port = any_port
        rng = random.Random(seed)
        self.devices: dict[str, SimulatedDevice] = {}
        passwords = DevicePasswords.from_environment()
        for device in site.devices:
            profile = site.profile_of(device)
            model_cls = MODELS.get(profile.type)  # the profile's type chooses the model that drives it
            if model_cls is None:
                log.warning("no simulator for device type %r (%s); it will not answer", profile.type, device.id)
                continue
            model = model_cls(device.id, random.Random(rng.random()))
            sim = SimulatedDevice(device, profile, model)
            if device.mqtt:
                login = passwords.login(device.id) if passwords else None
                sim.mqtt = MqttDevice(device, profile, model, site.broker, login)
            self.devices[device.id] = sim
        # Seconds added to the time of day a device's model sees (a scenario at night): per device,
        # so that a scenario moves the clock of its own devices and no one else's.
        self.clock_offsets: dict[str, float] = {}
        self.paused = False  # models hold their values (tests compare the wire with them exactly)
        self._servers: list[ModbusBaseServer] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._last = time.monotonic()

    def model(self, device_id: str) -> DeviceModel:
        try:
            return self.devices[device_id].model
        except KeyError:
            raise UnknownDevice(device_id) from None

    async def inject(self, device_id: str, fault: str, params: dict[str, Any] | None = None) -> None:
        """Give a device a fault; raises UnknownDevice or FaultError. Takes effect at once."""
        self.model(device_id).inject(fault, params)
        await self._apply_now(device_id)
        log.info("fault %s%s injected on %s", fault, f" {params}" if params else "", device_id)

    async def clear(self, device_id: str, fault: str | None = None) -> None:
        self.model(device_id).clear(fault)
        await self._apply_now(device_id)
        log.info("faults %s cleared on %s", fault or "all", device_id)

    def set_time_of_day(self, seconds: float, devices: Iterable[str] | None = None) -> None:
        """Make the models of `devices` (None: every device) see `seconds` after midnight as the
        time of day from now on."""
        offset = seconds - _local_time_of_day()
        for device in self.devices if devices is None else devices:
            self.clock_offsets[device] = offset

    def time_of_day(self, device: str | None = None) -> float:
        """The time of day `device`'s model sees (None: the plant's own, with no scenario's clock)."""
        return (_local_time_of_day() + self.clock_offsets.get(device or "", 0.0)) % 86400

    async def _apply_now(self, device_id: str) -> None:
        """Step the model at once and let an MQTT device report the change, as real ones do."""
        sim = self.devices[device_id]
        sim.model.step(0.0, self.time_of_day(device_id))
        if sim.mqtt is not None:
            await sim.mqtt.tick(time.monotonic(), force=True)

    async def start(self) -> None:
        for device_id, sim in self.devices.items():
            sim.model.step(0.0, self.time_of_day(device_id))
        buses: dict[str, tuple[ModbusBinding, list[tuple[int, Profile, DeviceModel]]]] = {}
        for sim in self.devices.values():
            binding = sim.device.modbus
            if binding:
                buses.setdefault(binding.endpoint, (binding, []))[1].append((binding.unit, sim.profile, sim.model))
        bound: dict[str, ModbusBinding] = {}  # endpoint in the site file -> where it listens
        try:
            for endpoint, (binding, members) in buses.items():
                if self._any_port and not binding.serial:
                    binding = binding.model_copy(update={"host": "127.0.0.1", "port": 0})
                server = build_server(binding, members)
                await server.serve_forever(background=True)
                self._servers.append(server)
                if binding.port == 0 and not binding.serial:
                    bound[endpoint] = binding.model_copy(update={"port": bound_port(server)})
            for sim in self.devices.values():
                if sim.mqtt is not None:
                    await sim.mqtt.start()
        except BaseException:
            await self.stop()
            raise
        if bound:
            self._rebind(bound)
        self._last = time.monotonic()
        self._tasks.append(asyncio.create_task(self._run(), name="simulators"))

    def _rebind(self, bound: dict[str, ModbusBinding]) -> None:
        """Each device on a bus in `bound` given that bus's host and port (the unit stays)."""
        devices = []
        for device in self.site.devices:
            binding = device.modbus
            if binding is not None and binding.endpoint in bound:
                listening = bound[binding.endpoint]
                device = device.model_copy(
                    update={"modbus": binding.model_copy(update={"host": listening.host, "port": listening.port})}
                )
                if device.id in self.devices:
                    self.devices[device.id].device = device
            devices.append(device)
        self.site = self.site.model_copy(update={"devices": devices})

    async def stop(self) -> None:
        await cancel_all(self._tasks)
        for server in self._servers:
            await server.shutdown()
        for sim in self.devices.values():
            if sim.mqtt is not None:
                await sim.mqtt.stop()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(STEP_S)
            now = time.monotonic()
            for device_id, sim in self.devices.items():
                if not self.paused:
                    sim.model.step(now - self._last, self.time_of_day(device_id))
                if sim.mqtt is not None:
                    await sim.mqtt.tick(now)
            self._last = now


def _local_time_of_day() -> float:
    now = time.localtime()
    return float(now.tm_hour * 3600 + now.tm_min * 60 + now.tm_sec)
