"""The estate's door for the centre's writes, on a real broker: a request delivered twice is written
once and answered twice alike, one that comes after the centre gave up is not written, and what
the estate's write raised is raised again at the centre."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from facility.model import Value
from facility.mqtt import MqttClient
from facility.site import load_site
from facility.write_requests import RequestExpired, WriteAnswer, WriteRequest, decode_answer, encode, requests_topic
from facility.writes import NotAllowed
from gateway.remote_writes import RemoteGateway, WriteDoor
from testsupport.servers import Mosquitto
from testsupport.system import write_site


class EstateWrites:
    """The estate's audited write as the door calls it: here, a record of the calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Value, str, str]] = []

    async def __call__(self, device: str, point: str, value: Value, *, actor: str, source: str) -> Value:
        self.calls.append((device, point, value, actor, source))
        await asyncio.sleep(0.2)  # a Modbus write and its read-back take a while: copies arrive meanwhile
        if point != "pressure_setpoint":
            raise NotAllowed(f"{device} {point} is not in the site's `writes:` allow-list")
        return value


async def test_the_door_writes_once_refuses_late_and_answers_in_kind(tmp_path: Path, mosquitto: Mosquitto) -> None:
    site = load_site(write_site(tmp_path, mosquitto.url, 1502))
    writes = EstateWrites()
    door = WriteDoor(site, writes, "test-door")
    centre = RemoteGateway(site, "test-centre")
    answers = "facility/v1/writes/x/answers/test"
    answered: list[WriteAnswer] = []
    sender = MqttClient(
        "127.0.0.1",
        mosquitto.port,
        subscriptions=[(answers, 1)],
        on_messages=lambda batch: answered.extend(decode_answer(payload) for _, payload in batch),
    )
    for client in (door, centre):
        await client.start()
    await sender.start()
    try:
        assert await centre.write("pump-1", "pressure_setpoint", 0.4, actor="duty", source="10.0.0.9") == 0.4
        with pytest.raises(NotAllowed, match="allow-list"):
            await centre.write("pump-1", "frequency", 40, actor="duty", source="10.0.0.9")
        assert writes.calls == [
            ("pump-1", "pressure_setpoint", 0.4, "duty", "centre 10.0.0.9"),
            ("pump-1", "frequency", 40, "duty", "centre 10.0.0.9"),
        ]

        # The same request twice (QoS 1 after a reconnect), and one already expired.
        late = WriteRequest("late", "pump-1", "pressure_setpoint", 0.5, "duty", "", time.time_ns() - 1, answers)
        twice = WriteRequest("twice", "pump-1", "pressure_setpoint", 0.35, "duty", "", time.time_ns() + 10**10, answers)
        for request in (twice, twice, late):
            sender.publish(requests_topic(site.site.id), encode(request), qos=1)
        async with asyncio.timeout(10):
            while len(answered) < 3:  # noqa: ASYNC110 (the broker's answers, polled with a deadline)
                await asyncio.sleep(0.05)
        # Every answer is sent after its write: with three answers in, every write there was is done.
        assert writes.calls[2:] == [("pump-1", "pressure_setpoint", 0.35, "duty", "centre ")]
        by_id = sorted(answered, key=lambda a: a.id)
        assert [(a.id, a.value, a.kind) for a in by_id] == [
            ("late", None, RequestExpired.__name__),
            ("twice", 0.35, ""),
            ("twice", 0.35, ""),
        ]
        assert "after the centre gave up" in by_id[0].error
    finally:
        await sender.stop()
        for client in (door, centre):
            await client.stop()
