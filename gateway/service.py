"""Starts and stops the gateway's parts for one site."""

from __future__ import annotations

import asyncio

from facility.aio import cancel_all
from facility.bus import Bus
from facility.model import Reading, Value
from facility.mqtt import MqttClient
from facility.profile import Profile
from facility.site import Device, Site
from facility.writes import DeviceOffline, check_value, resolve
from gateway.deadletter import DeadLetters
from gateway.health import Health
from gateway.modbus.poller import BusPoller
from gateway.mqtt import MqttIngest


class Gateway:
    def __init__(self, site: Site, bus: Bus, dead_letters: DeadLetters) -> None:
        self._site = site
        self._bus = bus
        self._tasks: list[asyncio.Task[None]] = []
        self._mqtt: MqttClient | None = None
        self.dead_letters = dead_letters
        self.ingest = MqttIngest(site, self._publish, self._status, dead_letters.put)
        self.health = Health(site, self._publish)
        bus.on_readings(self.health.seen)
        self.pollers: list[BusPoller] = []
        self._poller_of: dict[str, BusPoller] = {}  # device id -> the poller of its bus

    def _publish(self, readings: list[Reading]) -> None:
        self._bus.publish_readings(readings)

    def _status(self, device: str, online: bool) -> None:
        self._bus.publish_event("device", {"device": device, "online": online})

    async def start(self) -> None:
        if self.ingest.subscriptions:
            broker = self._site.broker
            self._mqtt = MqttClient(
                broker.host,
                broker.port,
                # A fixed client id and a kept session: the broker holds QoS 1 messages while the
                # gateway restarts, and they are acknowledged only once handed on.
                client_id=f"facility-gateway-{self._site.site.id}",
                subscriptions=self.ingest.subscriptions,
                on_messages=self.ingest.handle,
                username=broker.username,
                password=broker.password,
                manual_ack=True,
            )
            await self._mqtt.start()
        buses: dict[str, list[tuple[Device, Profile]]] = {}
        for device in self._site.devices:
            if device.modbus:
                buses.setdefault(device.modbus.endpoint, []).append((device, self._site.profile_of(device)))
        for endpoint, members in buses.items():
            binding = members[0][0].modbus
            assert binding is not None
            poller = BusPoller(binding, members, self._publish, self._status, self.dead_letters.put)
            self.pollers.append(poller)
            self._poller_of.update((device.id, poller) for device, _ in members)
            self._tasks.append(asyncio.create_task(poller.run(), name=f"modbus {endpoint}"))
        self._tasks.append(asyncio.create_task(self.health.run(), name="device health"))

    async def write(self, device_id: str, point: str, value: Value) -> Value:
        """Write an allow-listed point through its bus's poller; returns the value read back.

        The allow-list and range are checked here, at the one door to the buses, whoever calls:
        raises UnknownTarget, NotAllowed, BadValue, or a DeviceFailed from the poller.
        """
        target = resolve(self._site, device_id, point)
        checked = check_value(target, value)
        poller = self._poller_of.get(device_id)
        if poller is None:
            raise DeviceOffline(f"the gateway is not polling {device_id}")
        return await poller.write(device_id, point, checked)

    async def stop(self) -> None:
        await cancel_all(self._tasks)
        if self._mqtt is not None:
            await self._mqtt.stop()
