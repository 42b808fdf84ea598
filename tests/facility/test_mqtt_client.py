"""The project's MQTT client: paho driven by the event loop through a read buffer."""

from __future__ import annotations

import asyncio
import random

import pytest

from facility.mqtt import MqttClient, MqttError
from facility.mqtt_socket import READ_CHUNK
from facility.netutil import free_port
from testsupport.servers import Mosquitto


async def test_messages_of_every_size_arrive_whole_and_in_order(mosquitto: Mosquitto) -> None:
    """Sizes around the read buffer's edge and past it: a packet split over two reads, or
    larger than one, must come out whole; many small ones in one read must all come out."""
    rng = random.Random(7)
    sizes = [0, 1, 127, 128, 16383, 16384, READ_CHUNK - 5, READ_CHUNK, READ_CHUNK + 1, 3 * READ_CHUNK + 17]
    sizes += [rng.randrange(1, 300) for _ in range(2000)]
    sent = [(f"size/{i}", rng.randbytes(n)) for i, n in enumerate(sizes)]
    received: list[tuple[str, bytes]] = []
    done = asyncio.Event()

    def on_messages(batch: list[tuple[str, bytes | bytearray]]) -> None:
        received.extend((t, bytes(p)) for t, p in batch)
        if len(received) >= len(sent):
            done.set()

    subscriber = MqttClient("127.0.0.1", mosquitto.port, subscriptions=[("size/#", 1)], on_messages=on_messages)
    publisher = MqttClient("127.0.0.1", mosquitto.port)
    await subscriber.start()  # returns after SUBACK: nothing published from here on is missed
    await publisher.start()
    try:
        for topic, payload in sent:
            publisher.publish(topic, payload, qos=1)
        await asyncio.wait_for(done.wait(), 60)
        assert received == sent
    finally:
        await publisher.stop()
        await subscriber.stop()


async def test_no_broker_is_a_clear_error_within_the_timeout() -> None:
    port = free_port()
    client = MqttClient("127.0.0.1", port)
    with pytest.raises(MqttError, match=f"127.0.0.1:{port}"):
        await client.start(timeout=1.5)
    assert not client.connected
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert not [t for t in others if t.get_name().startswith("mqtt ")]  # it stopped retrying
