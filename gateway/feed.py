"""The centre's side of the uplink: readings the estates' gateways publish, onto this process's bus.

A process that runs the writers or the rules but not the gateway reads its estate's readings from
`facility/v1/readings/<site>/+` (facility.readings_wire), with a kept session and manual
acknowledgement: a message is acknowledged only once its readings are in the telemetry store or
the spool and the rule outcomes they caused are journaled, as the gateway's own MQTT ingest does.

Writers that run on their own join a shared subscription (`$share/<group>/...`): the broker hands
each message to one of them, so that adding a writer adds throughput. A process that runs the
rules takes every reading of its estate (a condition must see every change of its device), so it
subscribes on its own, and to the devices' status as well (`facility/v1/status/<site>/+`,
retained): the rules' `offline()` and the desk's device board hear a device that says it is gone.
The client id names the part and the instance (`--instance`): a writer restarted under the same
name gets back the session the broker kept for it, with what it had not acknowledged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from facility.bus import Bus
from facility.model import Reading
from facility.mqtt import MqttClient
from facility.mqtt_delivery import AckAfter, Message
from facility.readiness import Figure, PartState
from facility.readings_wire import (
    READINGS_TOPIC,
    STATUS_TOPIC,
    WireError,
    decode,
    decode_status,
    device_of,
    readings_filter,
    status_filter,
)
from facility.site import Site
from gateway.deadletter import DeadLetters

log = logging.getLogger(__name__)

ACK_SETTLE_S = 5.0  # at a stop, how long acknowledgements may wait for what they carried to be safe


class ReadingsFeed:
    """Subscribes to one estate's readings and hands each batch of them to the bus."""

    def __init__(
        self,
        site: Site,
        bus: Bus,
        dead_letters: DeadLetters,
        *,
        client_id: str,
        shared_group: str | None,
        ack_after: AckAfter | None,
    ) -> None:
        self._site_id = site.site.id
        self._devices = {d.id for d in site.devices}
        self._bus = bus
        self._dead_letters = dead_letters
        topic = readings_filter(self._site_id)
        self.subscription = f"$share/{shared_group}/{topic}" if shared_group else topic
        statuses = [] if shared_group else [(status_filter(self._site_id), 1)]  # the writers store no status
        self._mqtt = MqttClient.of(
            site.uplink or site.broker,
            client_id=client_id,
            subscriptions=[(self.subscription, 1), *statuses],
            on_messages=self.handle,
            manual_ack=True,
            ack_after=ack_after,
            name="readings feed",
        )
        self.refused = 0  # messages that were not readings of a device of the site (dead letters)

    async def start(self) -> None:
        await self._mqtt.start(required=False)  # a broker not up yet delays the readings, nothing else

    def handle(self, batch: list[Message]) -> None:
        """One bus batch of the readings a batch of messages carried, and the statuses between
        them in the order they came; what cannot be read is a dead letter, and never holds up the
        rest."""
        readings: list[Reading] = []
        for topic, payload in batch:
            try:
                status = topic.startswith(STATUS_TOPIC)
                device = device_of(topic, self._site_id, STATUS_TOPIC if status else READINGS_TOPIC)
                if device not in self._devices:
                    raise WireError(f"no device {device!r} in site {self._site_id!r}")
                if not status:
                    readings += decode(device, payload)
                    continue
                said = decode_status(device, payload)
                if readings:  # what came before the status reaches the bus before it
                    self._bus.publish_readings(readings)
                    readings = []
                self._bus.publish_status(said)
            except WireError as exc:
                self.refused += 1
                self._dead_letters.put("uplink", topic, str(exc), payload)
        if readings:
            self._bus.publish_readings(readings)

    async def stop_reading(self) -> None:
        """Read no more; what was read is still handed on."""
        self._mqtt.pause()

    async def stop(self) -> None:
        self._mqtt.pause()
        unacked = await self._mqtt.settle(ACK_SETTLE_S)
        if unacked:
            log.warning("%d batches of readings left unacknowledged; the broker delivers them again", unacked)
        await self._mqtt.stop()

    def parts(self) -> Iterable[PartState]:
        yield from self._mqtt.parts()

    def figures(self) -> Iterable[Figure]:
        yield from self._mqtt.figures()
        yield Figure("feed_refused_messages_total", "readings messages that could not be read", "counter", self.refused)
