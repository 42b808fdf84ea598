"""The demo's embedded broker, in both of its forms, carries messages and stops cleanly."""

from __future__ import annotations

import asyncio

import pytest

from facility.broker import EmbeddedBroker
from facility.mqtt import MqttClient
from facility.mqtt_delivery import Message
from testsupport.servers import require_binary


@pytest.mark.parametrize("kind", ["mosquitto", "amqtt"])
async def test_embedded_broker_round_trip(kind: str) -> None:
    if kind == "mosquitto":
        require_binary("mosquitto", "mosquitto")
    broker = EmbeddedBroker(kind)  # type: ignore[arg-type]
    await broker.start()
    received: list[Message] = []
    arrived = asyncio.Event()

    def on_messages(batch: list[Message]) -> None:
        received.extend(batch)
        arrived.set()

    subscriber = MqttClient("127.0.0.1", broker.port, subscriptions=[("t/#", 1)], on_messages=on_messages)
    publisher = MqttClient("127.0.0.1", broker.port)
    try:
        await subscriber.start()
        await publisher.start()
        publisher.publish("t/1", b'{"x": 1}', qos=1)
        await asyncio.wait_for(arrived.wait(), 10)
        assert received == [("t/1", b'{"x": 1}')]
    finally:
        await publisher.stop()
        await subscriber.stop()
        await broker.stop()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", broker.port)  # nothing left listening
