"""Starts and stops the gateway's parts for one site.

Stopping comes in two steps so that the runtime can drain in order: `stop_reading` ends polling
and reading MQTT (what was read is still handed on), and `stop` — once the writer has made that
safe — sends the acknowledgements owed and disconnects.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from facility.aio import cancel_all
from facility.bus import Bus
from facility.model import DeviceStatus, Reading, Value, now_ns
from facility.mqtt import MqttClient
from facility.mqtt_delivery import AckAfter
from facility.profile import Profile
from facility.readiness import Figure, PartState
from facility.site import Device, Site
from facility.writes import DeviceOffline, check_value, resolve
from gateway.deadletter import DeadLetters
from gateway.health import Health
from gateway.modbus.poller import BusPoller
from gateway.mqtt import MqttIngest

log = logging.getLogger(__name__)

ACK_SETTLE_S = 5.0  # at a stop, how long acknowledgements may wait for what they carried to be safe


class Gateway:
    def __init__(self, site: Site, bus: Bus, dead_letters: DeadLetters, ack_after: AckAfter | None = None) -> None:
        """`ack_after` says when what a batch of MQTT messages carried is safe (see MqttClient):
        QoS 1 messages are acknowledged only then."""
        self._site = site
        self._bus = bus
        self._ack_after = ack_after
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
        self.health.status(device, online)
        self._bus.publish_status(DeviceStatus(device, online, now_ns()))

    async def start(self) -> None:
        if self.ingest.subscriptions:
            self._mqtt = MqttClient.of(
                self._site.broker,
                # A fixed client id and a kept session: the broker holds QoS 1 messages while the
                # gateway restarts, and they are acknowledged only once handed on.
                client_id=f"facility-gateway-{self._site.site.id}",
                subscriptions=self.ingest.subscriptions,
                on_messages=self.ingest.handle,
                manual_ack=True,
                ack_after=self._ack_after,
                name="gateway",
            )
            await self._mqtt.start(required=False)  # a broker not up yet delays MQTT devices, nothing else
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

    async def write(self, device_id: str, point: str, value: Value, *, actor: str = "", source: str = "") -> Value:
        """Write an allow-listed point through its bus's poller; returns the value read back.

        The allow-list and range are checked here, at the one door to the buses, whoever calls:
        raises UnknownTarget, NotAllowed, BadValue, or a DeviceFailed from the poller. `actor` and
        `source` (who asked, from where) are for the log: a write to the plant is never quiet.
        """
        target = resolve(self._site, device_id, point)
        checked = check_value(target, value)
        log.info("writing %s/%s = %r for %s (%s)", device_id, point, checked, actor or "?", source or "here")
        poller = self._poller_of.get(device_id)
        if poller is None:
            raise DeviceOffline(f"the gateway is not polling {device_id}")
        return await poller.write(device_id, point, checked)

    async def stop_reading(self) -> None:
        """Poll and read no more; what was read is still handed on."""
        if self._mqtt is not None:
            self._mqtt.pause()
        await cancel_all(self._tasks)
        self._tasks = []

    async def stop(self) -> None:
        await self.stop_reading()
        if self._mqtt is not None:
            unacked = await self._mqtt.settle(ACK_SETTLE_S)
            if unacked:
                log.warning("%d batches of MQTT messages left unacknowledged; the broker delivers them again", unacked)
            await self._mqtt.stop()

    def parts(self) -> Iterable[PartState]:
        if self._mqtt is not None:
            yield from self._mqtt.parts()

    def figures(self) -> Iterable[Figure]:
        if self._mqtt is not None:
            yield from self._mqtt.figures()
            yield Figure(
                "mqtt_unknown_topic_messages_total",
                "MQTT messages on a topic no device has (kept as a dead letter once per topic a minute)",
                "counter",
                self.ingest.unknown,
            )
