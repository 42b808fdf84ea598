"""The readings that travel between an estate's gateway and the centre: the message format, the
feed that reads it (on a real broker), and the choice of parts a process runs."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from facility.bus import LocalBus
from facility.model import DeviceStatus, Quality, Reading
from facility.mqtt import MqttClient
from facility.mqtt_settings import Broker
from facility.readings_wire import WireError, by_device, decode, device_of, encode, readings_topic
from facility.site import load_site
from facility_app.cli import app
from gateway.feed import ReadingsFeed
from gateway.uplink import Uplink
from testsupport.servers import Mosquitto
from testsupport.system import write_site


def test_every_value_comes_back_with_its_type_and_quality() -> None:
    readings = [
        Reading("pump-1", "running", True, Quality.GOOD, 1),
        Reading("pump-1", "starts", 7, Quality.GOOD, 2),
        Reading("pump-1", "pressure", 0.1 + 0.2, Quality.STALE, 3),
        Reading("pump-1", "mode", "auto", Quality.GOOD, 4),
        Reading("pump-1", "flow", None, Quality.NO_COMM, 5),
        Reading("pump-1", "nan", math.inf, Quality.BAD, 1_800_000_000_000_000_000),
    ]
    back = decode("pump-1", encode(readings))
    assert back == readings
    assert [type(r.value) for r in back] == [bool, int, float, str, type(None), float]


def test_a_batch_goes_as_one_message_per_device_in_its_order() -> None:
    batch = [Reading(d, "p", i, Quality.GOOD, i) for i, d in enumerate(["a", "b", "a", "c", "b"])]
    assert {d: [r.value for r in rows] for d, rows in by_device(batch).items()} == {"a": [0, 2], "b": [1, 4], "c": [3]}


def test_what_is_not_a_readings_message_is_refused_with_why() -> None:
    assert device_of(readings_topic("north", "pump-1"), "north") == "pump-1"
    for topic in ("facility/v1/readings/south/pump-1", "facility/v1/readings/north/", "facility/v1/readings/north/a/b"):
        with pytest.raises(WireError, match="not a readings topic of site 'north'"):
            device_of(topic, "north")
    with pytest.raises(WireError, match="not a readings message"):
        decode("pump-1", b'{"json": "is not msgpack"}')
    with pytest.raises(WireError, match="unknown quality 'fine'"):
        decode("pump-1", encode([Reading("pump-1", "p", 1, Quality.GOOD, 1)]).replace(b"good", b"fine"))


class _Letters:
    """The feed's dead-letter sink, kept in a list (the ops store's table is tested elsewhere)."""

    def __init__(self) -> None:
        self.kept: list[tuple[str, str, str]] = []

    def put(self, source: str, key: str, reason: str, payload: object) -> None:
        self.kept.append((source, key, reason))


async def test_the_feed_hands_an_estates_readings_to_the_bus_and_keeps_the_rest(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    site = load_site(write_site(tmp_path, mosquitto.url, 1502))
    device = site.devices[0].id
    bus = LocalBus()
    got: list[Reading] = []
    bus.on_readings(got.extend)
    letters = _Letters()
    feed = ReadingsFeed(site, bus, letters, client_id="test-feed", shared_group=None, ack_after=None)  # type: ignore[arg-type]
    await feed.start()
    uplink = Uplink(Broker(url=mosquitto.url), site.site.id, "test-uplink")
    uplink.start()
    other = MqttClient("127.0.0.1", mosquitto.port)
    await other.start()
    try:
        sent = [Reading(device, "p", i, Quality.GOOD, 1000 + i) for i in range(3)]
        await _until(lambda: _written(uplink, sent))
        other.publish(readings_topic(site.site.id, "no-such-device"), encode(sent), qos=1)
        other.publish(readings_topic(site.site.id, device), b"\xc1", qos=1)
        await _until(lambda: len(got) == 3 and len(letters.kept) == 2)
        assert got == sent
        assert [(source, reason.split(":")[0]) for source, _, reason in letters.kept] == [
            ("uplink", f"no device 'no-such-device' in site '{site.site.id}'"),
            ("uplink", "not a readings message"),
        ]
        assert feed.refused == 2
    finally:
        uplink.close()
        await other.stop()
        await feed.stop()


async def test_a_devices_status_reaches_the_centre_whenever_it_listens(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """The estate's gateway says a device went offline while the centre's rules are away; the
    rules, subscribing later, hear it (retained), then hear it come back, in order with its readings.
    The writers' shared group takes no status."""
    site = load_site(write_site(tmp_path, mosquitto.url, 1502))
    device = site.devices[0].id
    uplink = Uplink(Broker(url=mosquitto.url), site.site.id, "test-uplink")
    uplink.send_status(DeviceStatus(device, False, 1000))  # before it is connected: sent once it is
    uplink.start()
    bus, writers_bus = LocalBus(), LocalBus()
    heard: list[object] = []
    bus.on_status(heard.append)
    bus.on_readings(heard.extend)
    writers_heard: list[object] = []
    writers_bus.on_status(writers_heard.append)
    letters = _Letters()
    rules = ReadingsFeed(site, bus, letters, client_id="test-rules", shared_group=None, ack_after=None)  # type: ignore[arg-type]
    writers = ReadingsFeed(site, writers_bus, letters, client_id="test-w", shared_group="w", ack_after=None)  # type: ignore[arg-type]
    try:
        await _until(lambda: _written(uplink, []))  # connected: the status that waited is sent
        await rules.start()
        await writers.start()
        await _until(lambda: heard == [DeviceStatus(device, False, 1000)])
        back = Reading(device, "p", 1.0, Quality.GOOD, 2001)
        uplink.send_status(DeviceStatus(device, True, 2000))
        await _until(lambda: _written(uplink, [back]))
        await _until(lambda: len(heard) == 3)
        assert heard == [DeviceStatus(device, False, 1000), DeviceStatus(device, True, 2000), back]
        assert writers_heard == [] and letters.kept == []
    finally:
        uplink.close()
        await rules.stop()
        await writers.stop()


def _written(uplink: Uplink, readings: list[Reading]) -> bool:
    """One write through the uplink (in this thread: it blocks on the broker's acknowledgement);
    False while it is not connected yet."""
    try:
        uplink.write(readings)
    except Exception:
        return False
    return True


async def _until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll `check` (the broker's side of the test has no event to wait on) until it holds."""
    async with asyncio.timeout(timeout):
        while not check():  # noqa: ASYNC110 (a condition with a deadline, polled)
            await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    ("parts", "said"),
    [
        ("gateway,fridge", "fridge given; choose from gateway, writer, rules, api"),
        (",", "none given"),
        ("gateway,api", "the api needs the rules in the same process"),
    ],
)
def test_a_process_runs_only_parts_there_are(parts: str, said: str) -> None:
    result = CliRunner().invoke(app, ["run", "-c", "sites/demo/site.yaml", "--parts", parts])
    assert result.exit_code == 2
    assert said in " ".join(result.output.replace("│", " ").split())  # the words, out of rich's box
