"""MQTT ingest against a real Mosquitto: a broker restart under QoS 1 load, malformed payloads,
status topics (retained and last will), source timestamps, and acknowledgement only after the
batch handler has returned.

Each test starts its own broker with persistence on (so that a stop and a start keep sessions,
subscriptions and queued QoS 1 messages) and stops exactly that process.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import subprocess
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from facility.bus import Bus, Event, LocalBus
from facility.model import Quality, Reading
from facility.mqtt import MqttClient
from facility.mqtt_delivery import Message
from facility.records import DeadLetter
from facility.site import Site, load_site
from facility.store.ops import OpsStore
from gateway.deadletter import DeadLetters
from gateway.mqtt import MAX_PAYLOAD_BYTES
from gateway.service import Gateway
from tests.simulators.conftest import until
from testsupport.servers import Mosquitto, require_binary

DEVICE = "lift-1"
TOPIC = f"estate/t/elevators/{DEVICE}/state"
STATUS = f"estate/t/elevators/{DEVICE}/status"  # the default: beside the data topic
RECONNECT_DEADLINE_S = 15.0  # a bound for the gateway to be back after the broker is, not a speed claim


class PersistentMosquitto(Mosquitto):
    """A Mosquitto of the test's own that keeps its state on disk: SIGTERM makes it save, and
    `start` again on the same port restores sessions, subscriptions and queued messages."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.data = workdir / f"mosquitto-{self.port}.d"
        self.data.mkdir()
        self.log = self.data / "mosquitto.log"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            # Run as whoever runs the tests (as root, Mosquitto would otherwise switch to the
            # `mosquitto` user, which cannot write into the test's private temporary folder).
            f"user {pwd.getpwuid(os.getuid()).pw_name}\n"
            "persistence true\n"
            f"persistence_location {self.data}/\n"
            "autosave_interval 1\n"
            f"log_dest file {self.log}\n"
        )
        self.pids: list[int] = []

    def start(self) -> None:
        super().start()
        assert self.proc is not None
        self.pids.append(self.proc.pid)

    # stop() is Mosquitto's: SIGTERM to this pid (Mosquitto saves its database on the way out), then wait.

    def log_tail(self) -> str:
        """For failure messages: the end of the broker's log."""
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else "(no log)"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PersistentMosquitto]:
    server = PersistentMosquitto(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def write_site(tmp_path: Path, broker: Mosquitto) -> Site:
    path = tmp_path / "site.yaml"
    # interval 60 s: device health (stale after 3 intervals) stays out of these short tests.
    path.write_text(
        "site: {id: t}\n"
        f'broker: {{url: "{broker.url}"}}\n'
        "use_rule_library: false\n"
        "devices:\n"
        f"  - {{id: {DEVICE}, profile: elevator, mqtt: {{topic: {TOPIC}, interval: 60s}}}}\n"
    )
    return load_site(path)


class Received:
    """Every reading batch the bus carries, in order."""

    def __init__(self, bus: Bus) -> None:
        self.readings: list[Reading] = []
        bus.on_readings(self._got)

    def _got(self, batch: Sequence[Reading]) -> None:
        self.readings.extend(batch)

    def since(self, mark: int) -> list[Reading]:
        return self.readings[mark:]


@dataclass
class Rig:
    site: Site
    gateway: Gateway
    bus: Bus
    received: Received
    events: asyncio.Queue[Event]  # every bus event since before the gateway started
    store: OpsStore


@asynccontextmanager
async def running_gateway(tmp_path: Path, broker: Mosquitto) -> AsyncIterator[Rig]:
    site = write_site(tmp_path, broker)
    store = OpsStore(f"sqlite+aiosqlite:///{tmp_path / 'ops.db'}", site="t")
    await store.start()
    bus = LocalBus()
    received = Received(bus)
    gateway = Gateway(site, bus, DeadLetters(store))
    try:
        with bus.subscribe() as events:
            await gateway.start()
            try:
                yield Rig(site, gateway, bus, received, events, store)
            finally:
                await gateway.stop()
    finally:
        await store.close()


@asynccontextmanager
async def publisher(broker: Mosquitto, **options: Any) -> AsyncIterator[MqttClient]:
    client = MqttClient("127.0.0.1", broker.port, **options)
    await client.start()
    try:
        yield client
    finally:
        await client.stop()


def elevator_doc(trips: int, **changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "car": {"floor": 3, "direction": "up", "moving": True, "in_door_zone": False},
        "door": {"open": False, "cycles": 2 * trips},
        "alarm_button": False,
        "fault_code": 0,
        "mode": "normal",
        "counters": {"trips": trips},
    }
    doc.update(changes)
    return doc


async def send_and_collect(client: MqttClient, received: Received, doc: dict[str, Any]) -> list[Reading]:
    """Publish one document and return the readings it became (it is marked by its trip count)."""
    mark = len(received.readings)
    trips = doc["counters"]["trips"]
    client.publish(TOPIC, json.dumps(doc), qos=1)
    await until(lambda: any(r.point == "trips" and r.value == trips for r in received.since(mark)))
    return received.since(mark)


async def device_event(events: asyncio.Queue[Event], timeout: float = 10.0) -> dict[str, Any]:
    while True:
        event = await asyncio.wait_for(events.get(), timeout)
        if event.kind == "device":
            return event.data


async def stored_dead_letters(gateway: Gateway, store: OpsStore, count: int) -> list[DeadLetter]:
    """Flush the gateway's dead letters until at least `count` are stored; oldest first."""

    async def enough() -> list[DeadLetter] | None:
        await gateway.dead_letters.flush()
        letters = await store.letters.recent()
        return letters if len(letters) >= count else None

    letters: list[DeadLetter] = await until(enough)
    return letters[::-1]


# 1. A broker restart under QoS 1 load loses nothing.


class PahoDevice:
    """A device's own client as a vendor would write it: plain paho, a fixed client id, a kept
    session (clean_session=False), QoS 1. paho queues what is published while the broker is
    away and sends it once connected again."""

    def __init__(self, port: int, client_id: str) -> None:
        self.port = port
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        self.client.on_publish = self._acked
        # Back within 0.2 s of the broker, well before the gateway (paho's 1 s, 2 s, 4 s... backoff):
        # what it sends meanwhile waits in the gateway's kept session, or is lost without one.
        self.client.reconnect_delay_set(min_delay=0.1, max_delay=0.2)  # type: ignore[arg-type]
        self.published = 0
        self.acked = 0  # PUBACKs from the broker: it has taken responsibility for the message

    def _acked(self, _c: Any, _u: Any, _mid: int, _reason: Any, _p: Any) -> None:
        self.acked += 1  # paho's thread; only ever incremented there

    async def start(self) -> None:
        self.client.connect_async("127.0.0.1", self.port)
        self.client.loop_start()
        await until(self.client.is_connected)

    async def stop(self) -> None:
        self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)

    async def stream(self, count: int, rate: float) -> None:
        """Documents with counters.trips = 1..count at a steady `rate` per second."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        for trips in range(1, count + 1):
            self.client.publish(TOPIC, json.dumps(elevator_doc(trips)), qos=1)
            self.published = trips
            await asyncio.sleep(max(0.0, start + trips / rate - loop.time()))  # pacing, not waiting


async def test_a_broker_restart_under_qos1_load_loses_no_message(tmp_path: Path, broker: PersistentMosquitto) -> None:
    count, rate = 1000, 200.0  # five seconds of a steady stream
    async with running_gateway(tmp_path, broker) as rig:
        gateway, store = rig.gateway, rig.store
        mqtt = gateway._mqtt
        assert mqtt is not None
        trips: set[int] = set()
        arrivals = [0]

        def note(batch: Sequence[Reading]) -> None:
            for r in batch:  # (the bus logs and swallows a handler's exceptions: no asserts here)
                if r.point == "trips" and r.quality is Quality.GOOD and isinstance(r.value, int):
                    trips.add(r.value)
                    arrivals[0] += 1

        rig.bus.on_readings(note)
        device = PahoDevice(broker.port, f"{DEVICE}-monitor")
        await device.start()
        stream = asyncio.create_task(device.stream(count, rate))
        try:
            await until(lambda: len(trips) >= 200)  # the stream is flowing end to end
            await asyncio.to_thread(broker.stop)  # SIGTERM mid-stream: the broker saves and exits
            stopped_at = device.published
            await until(lambda: not mqtt.connected)  # the gateway noticed: this is a real outage
            await until(lambda: device.published >= stopped_at + 200)  # a second's worth while down
            assert device.published < count, "the outage must fall inside the stream"
            await asyncio.to_thread(broker.start)  # same port, same persistence folder
            await until(device.client.is_connected)
            restarted_at = arrivals[0]
            try:
                await until(lambda: mqtt.connected and arrivals[0] > restarted_at, timeout=RECONNECT_DEADLINE_S)
            except TimeoutError:
                raise AssertionError(
                    f"the gateway did not resume within {RECONNECT_DEADLINE_S}s of the broker's restart;\n"
                    f"broker log:\n{broker.log_tail()}"
                ) from None
            await stream
            await until(lambda: device.acked >= count, timeout=30)  # the broker took all of them
            everything = set(range(1, count + 1))
            try:
                await until(lambda: everything <= trips, timeout=30)
            except TimeoutError:
                missing = sorted(everything - trips)
                raise AssertionError(
                    f"{len(missing)} of {count} trips never reached the bus: {missing[:20]}...;\n"
                    f"broker log:\n{broker.log_tail()}"
                ) from None
        finally:
            stream.cancel()
            await device.stop()
        assert len(broker.pids) == 2 and broker.pids[0] != broker.pids[1]  # it really was restarted
        assert await store.letters.recent() == []
        assert gateway.dead_letters.counts == {}


# 2. Malformed payloads never crash the ingest and are kept as dead letters.


async def test_malformed_payloads_are_dead_letters_and_the_ingest_carries_on(
    tmp_path: Path, broker: PersistentMosquitto
) -> None:
    bad_json = b'{"car": {"floor": 3'
    typed_wrong = elevator_doc(7, car={"floor": "n/a", "direction": "up", "moving": True, "in_door_zone": True})
    oversize = json.dumps(elevator_doc(8, padding="x" * MAX_PAYLOAD_BYTES)).encode()
    assert len(oversize) > MAX_PAYLOAD_BYTES
    async with running_gateway(tmp_path, broker) as rig:
        gateway, received, store = rig.gateway, rig.received, rig.store
        async with publisher(broker) as device:
            device.publish(TOPIC, bad_json, qos=1)
            device.publish(STATUS, b"maybe", qos=1)
            device.publish(TOPIC, oversize, qos=1)
            wrong = await send_and_collect(device, received, typed_wrong)
            good = await send_and_collect(device, received, elevator_doc(9))

        # The wrongly typed value is a bad reading; the rest of its document is good.
        by_point = {r.point: r for r in wrong}
        assert by_point["floor"].quality is Quality.BAD and by_point["floor"].value is None
        others = {p: (r.value, r.quality) for p, r in by_point.items() if p != "floor"}
        assert others == {
            "direction": ("up", Quality.GOOD),
            "moving": (True, Quality.GOOD),
            "in_door_zone": (True, Quality.GOOD),
            "door_open": (False, Quality.GOOD),
            "door_cycles": (14, Quality.GOOD),
            "alarm_button": (False, Quality.GOOD),
            "fault_code": (0, Quality.GOOD),
            "mode": ("normal", Quality.GOOD),
            "trips": (7, Quality.GOOD),
        }
        # The good document after all that is read in full.
        assert {r.point for r in good if r.quality is Quality.GOOD} == set(gateway.ingest.points[DEVICE])
        # Nothing of the oversize document got through (trips 8 was only in it).
        assert not any(r.point == "trips" and r.value == 8 for r in received.readings)
        assert gateway._mqtt is not None and gateway._mqtt.connected

        # One dead letter per bad message, keyed by its topic, its reason naming the problem.
        letters = await stored_dead_letters(gateway, store, 4)
        too_big = f"payload of {len(oversize)} bytes is over {MAX_PAYLOAD_BYTES} (payload cut to its first 4096 bytes)"
        kept = {d.reason.split(":")[0]: (d.source, d.key, d.payload) for d in letters}
        assert len(letters) == 4 and sorted(kept) == sorted(
            ["not JSON", "floor is 'n/a', not a number", too_big, "status is neither online nor offline"]
        ), letters
        assert kept["not JSON"] == ("mqtt", TOPIC, bad_json.decode())
        assert kept["status is neither online nor offline"] == ("mqtt", STATUS, "maybe")
        source, key, payload = kept["floor is 'n/a', not a number"]
        assert (source, key, json.loads(payload)) == ("mqtt", TOPIC, typed_wrong)
        source, key, payload = kept[too_big]
        assert (source, key) == ("mqtt", TOPIC) and oversize.decode().startswith(payload) and len(payload) == 4 * 1024


POISON = {
    "deeply nested JSON": b"[" * 1000 + b"]" * 1000,  # 2 kB; json.loads raises RecursionError
    "ts NaN": b'{"ts": NaN, "counters": {"trips": 1}}',  # int(nan) raises ValueError
    "ts Infinity": b'{"ts": Infinity, "counters": {"trips": 1}}',  # int(inf) raises OverflowError
    "not an object": b"42",  # valid JSON, but no document
    "NaN floor": b'{"car": {"floor": NaN}}',  # Python's json accepts NaN; it is no measurement
}


async def test_payloads_that_break_the_decoder_are_dead_letters_too(
    tmp_path: Path, broker: PersistentMosquitto
) -> None:
    poison = list(POISON.values()) * 8  # more than Mosquitto's 20 in-flight messages per client
    async with running_gateway(tmp_path, broker) as rig:
        async with publisher(broker) as device:
            for payload in poison:
                device.publish(TOPIC, payload, qos=1)
            device.publish(TOPIC, json.dumps(elevator_doc(5)), qos=1)
            await until(lambda: any(r.point == "trips" and r.value == 5 for r in rig.received.readings), timeout=5)
        letters = await stored_dead_letters(rig.gateway, rig.store, len(poison))
        assert len(letters) == len(poison) and {d.key for d in letters} == {TOPIC}


# 3. Status topics: a retained offline (as a last will leaves it), online, and a real last will.


async def test_status_topics_give_device_events_and_offline_marks_every_point_no_comm(
    tmp_path: Path, broker: PersistentMosquitto
) -> None:
    async with publisher(broker) as other:
        other.publish(STATUS, b"offline", qos=1, retain=True)  # left before the gateway starts
    async with running_gateway(tmp_path, broker) as rig:
        received, events = rig.received, rig.events
        points = set(rig.site.profile_of(rig.site.device(DEVICE)).points)
        # The retained offline reaches the gateway when it subscribes.
        await until(lambda: any(r.quality is Quality.NO_COMM for r in received.readings))
        no_comm = [r for r in received.readings if r.quality is Quality.NO_COMM]
        assert {r.point for r in no_comm} == points
        assert all(r.device == DEVICE and r.value is None for r in no_comm)
        assert await device_event(events) == {"device": DEVICE, "online": False}

        async with publisher(broker) as device:
            mark = len(received.readings)
            device.publish(STATUS, b"online", qos=1, retain=True)
            assert await device_event(events) == {"device": DEVICE, "online": True}
            # Heard from again, with no values: a status, not readings (none with a quality the
            # device did not send); its points keep their last ones until its next document.
            assert received.since(mark) == []

        # The real thing: a monitoring unit with a birth message and a last will.
        mark = len(received.readings)
        unit = MqttClient(
            "127.0.0.1",
            broker.port,
            client_id=f"{DEVICE}-unit",
            will=(STATUS, b"offline", 1, True),
            birth=(STATUS, b"online", 1, True),
        )
        await unit.start()
        try:
            assert await device_event(events) == {"device": DEVICE, "online": True}
            assert received.since(mark) == []  # online when already online makes no readings
            await unit.drop()  # power cut: no DISCONNECT, so the broker publishes the will
            assert await device_event(events) == {"device": DEVICE, "online": False}
        finally:
            await unit.stop()
        await until(lambda: {r.point for r in received.since(mark)} == points)
        assert all(r.quality is Quality.NO_COMM and r.value is None for r in received.since(mark))


# 4. Source timestamps are kept.


async def test_source_timestamps_are_kept_and_a_document_with_a_bad_one_is_a_dead_letter_whole(
    tmp_path: Path, broker: PersistentMosquitto
) -> None:
    hour_ago_ms = time.time_ns() // 1_000_000 - 3_600_000
    async with running_gateway(tmp_path, broker) as rig:
        gateway, received, store = rig.gateway, rig.received, rig.store
        async with publisher(broker) as device:
            stamped = await send_and_collect(device, received, elevator_doc(1, ts=hour_ago_ms))
            assert len(stamped) == len(gateway.ingest.points[DEVICE])
            assert {r.ts for r in stamped} == {hour_ago_ms * 1_000_000}

            before = time.time_ns()
            unstamped = await send_and_collect(device, received, elevator_doc(2))
            after = time.time_ns()
            assert all(before <= r.ts <= after for r in unstamped), (before, [r.ts for r in unstamped], after)

            # A garbled time and a time in seconds (a unit error) make the document a dead letter:
            # none of its values is used, at any time. The next good document is read as usual.
            mark = len(received.readings)
            device.publish(TOPIC, json.dumps(elevator_doc(3, ts="yesterday")), qos=1)
            device.publish(TOPIC, json.dumps(elevator_doc(4, ts=hour_ago_ms // 1000)), qos=1)
            after_them = await send_and_collect(device, received, elevator_doc(5))
            assert received.since(mark) == after_them
            assert {r.value for r in after_them if r.point == "trips"} == {5}

        letters = await stored_dead_letters(gateway, store, 2)
        implausible = "is not a plausible time in ms since the epoch; no value of it is used"
        assert [(d.key, d.reason) for d in letters] == [
            (TOPIC, f"timestamp 'yesterday' {implausible}"),
            (TOPIC, f"timestamp {hour_ago_ms // 1000} {implausible}"),
        ]
        assert json.loads(letters[0].payload)["ts"] == "yesterday"


# 5. QoS 1 messages are acknowledged only after the batch handler has returned.


async def publish_m2_to(broker: Mosquitto, client: MqttClient, topic: str, got: list[Message]) -> None:
    """Start another run of the session, publish m2 and wait for what it gets: the broker resends
    unacknowledged messages first, so an m1 still owed would come before m2."""
    await client.start()
    try:
        async with publisher(broker) as source:
            source.publish(topic, b"m2", qos=1)
            await until(lambda: got)
    finally:
        await client.stop()


class Crash(BaseException):
    """Stands for the process dying while a batch is being handled: not an error a handler raises
    (those are retried one by one and then dropped with a log line), but an end of the work."""


async def test_a_message_whose_handling_was_cut_short_is_delivered_again_after_a_crash(
    broker: PersistentMosquitto,
) -> None:
    topic, client_id = "t/ack", "ack-test-consumer"
    first_calls: list[list[Message]] = []
    redelivered: list[Message] = []

    def crashing(batch: list[Message]) -> None:
        first_calls.append(batch)
        raise Crash

    def working(batch: list[Message]) -> None:
        redelivered.extend(batch)

    def consumer(handler: Any) -> MqttClient:
        return MqttClient(
            "127.0.0.1",
            broker.port,
            client_id=client_id,
            subscriptions=[(topic, 1)],
            on_messages=handler,
            manual_ack=True,
        )

    first = consumer(crashing)
    await first.start()
    try:
        async with publisher(broker) as source:
            await until(lambda: first.connected)
            source.publish(topic, b"m1", qos=1)
            await until(lambda: first_calls)
    finally:
        await first.drop()  # a crash: no DISCONNECT, and no PUBACK was ever sent for m1
    assert first_calls == [[(topic, b"m1")]]

    second = consumer(working)
    await second.start()
    try:
        await until(lambda: redelivered)  # the broker kept m1 for the session and sends it again
    finally:
        await second.stop()  # a clean stop: the PUBACK for m1 goes out before the DISCONNECT
    assert redelivered == [(topic, b"m1")]

    # And once handled, it is acknowledged: a third run of the session gets m2, not m1 again
    # (the broker resends unacknowledged messages first, so m1 would come before m2).
    third_got: list[Message] = []
    await publish_m2_to(broker, consumer(third_got.extend), topic, third_got)
    assert third_got == [(topic, b"m2")]


def test_the_broker_helper_really_persists(tmp_path: Path) -> None:
    """The premise of the restart test: this broker configuration keeps a queued message."""
    sub_binary, pub_binary = (
        require_binary("mosquitto_sub", "mosquitto-clients"),
        require_binary("mosquitto_pub", "mosquitto-clients"),
    )
    server = PersistentMosquitto(tmp_path)
    server.start()
    try:
        sub = subprocess.run(
            [sub_binary, "-p", str(server.port), "-i", "keeper", "-c", "-q", "1", "-t", "k", "-E"],
            capture_output=True,
            timeout=10,
        )
        assert sub.returncode == 0, sub.stderr
        subprocess.run([pub_binary, "-p", str(server.port), "-q", "1", "-t", "k", "-m", "kept"], timeout=10)
        server.stop()
        server.start()
        got = subprocess.run(
            [
                sub_binary,
                "-p",
                str(server.port),
                "-i",
                "keeper",
                "-c",
                "-q",
                "1",
                "-t",
                "k",
                "-C",
                "1",
                "-W",
                "10",
            ],
            capture_output=True,
            timeout=15,
        )
        assert got.stdout == b"kept\n", got
    finally:
        server.stop()


# 6. QoS 1 messages are acknowledged only once what they carried is safe.


async def test_a_handled_message_is_not_acknowledged_until_what_it_carried_is_safe(
    broker: PersistentMosquitto,
) -> None:
    """The handler returned, but the store had not taken the reading yet (its `ack_after` future
    is pending) when the process died: the broker must deliver the message again."""
    topic, client_id = "t/safe", "safe-test-consumer"
    unsafe: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    got: list[Message] = []

    def consumer(ack_after: Any) -> MqttClient:
        return MqttClient(
            "127.0.0.1",
            broker.port,
            client_id=client_id,
            subscriptions=[(topic, 1)],
            on_messages=got.extend,
            manual_ack=True,
            ack_after=ack_after,
        )

    first = consumer(lambda: unsafe)
    await first.start()
    try:
        async with publisher(broker) as source:
            source.publish(topic, b"m1", qos=1)
            await until(lambda: got)
    finally:
        await first.drop()  # it dies with m1 handled but not safe
    assert got == [(topic, b"m1")]

    got.clear()
    safe: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    second = consumer(lambda: safe)
    await second.start()
    try:
        await until(lambda: got)  # m1 again
        assert got == [(topic, b"m1")]
        safe.set_result(None)  # now it is in the store: the acknowledgement goes out
        assert await second.settle(5.0) == 0
    finally:
        await second.stop()

    got.clear()
    await publish_m2_to(broker, consumer(lambda: None), topic, got)  # None: already safe, acknowledged at once
    assert got == [(topic, b"m2")]  # m1 was acknowledged: it does not come a third time


async def test_a_backlog_without_device_times_keeps_every_reading_in_order(
    tmp_path: Path, broker: PersistentMosquitto
) -> None:
    """Hundreds of queued documents arrive in one read after a restart; each keeps a time of its
    own, in the broker's order, so that a store keyed on (device, point, time) keeps them all."""
    count = 400
    async with running_gateway(tmp_path, broker):
        pass  # the gateway's kept session now exists; it is away while the backlog builds
    device = PahoDevice(broker.port, "backlog-device")
    await device.start()
    for trips in range(1, count + 1):
        doc = elevator_doc(trips)  # no "ts": the receive time is all there is
        device.client.publish(TOPIC, json.dumps(doc), qos=1)
    await until(lambda: device.acked == count)  # the broker holds them all for the gateway's session
    await device.stop()
    async with running_gateway(tmp_path, broker) as rig:
        await until(lambda: sum(r.point == "trips" for r in rig.received.readings) >= count)
        got = [r for r in rig.received.readings if r.point == "trips"]
    assert [r.value for r in got] == list(range(1, count + 1))
    times = [r.ts for r in got]
    assert times == sorted(times) and len(set(times)) == count


async def test_a_broker_that_lost_the_session_is_told_of_and_subscribed_at_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A broker without persistence forgets the gateway's session at a restart: the gateway says
    so, with the time the gap began, and its subscriptions are back as soon as it reconnects."""
    plain = Mosquitto(tmp_path)  # persistence false
    plain.start()
    try:
        async with running_gateway(tmp_path, plain) as rig:
            plain.stop()
            plain.start()  # same port, no memory of the session
            await until(lambda: "has lost the session" in caplog.text, timeout=RECONNECT_DEADLINE_S)
            async with publisher(plain) as source:
                readings = await send_and_collect(source, rig.received, elevator_doc(7))
            assert any(r.point == "trips" and r.value == 7 for r in readings)
        warning = next(r for r in caplog.records if "has lost the session" in r.getMessage())
        assert warning.levelname == "WARNING" and "since 20" in warning.getMessage()
    finally:
        plain.stop()
