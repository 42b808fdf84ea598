"""MQTT as engineers connecting equipment meet it, against a real Mosquitto: a status topic that
says offline and then online raises no communication loss, a device on a misspelt topic is seen
(counted in /metrics, and a dead letter once a minute per topic), and the service's own `facility/v1/...`
topics are not taken for a device's."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from api.metrics import ReadinessCollector
from facility.bus import Event, LocalBus
from facility.model import Reading
from facility.mqtt import MqttClient
from facility.readiness import Readiness
from facility.site import Site, load_site
from facility.store.live import LiveValues
from facility.store.ops import OpsStore
from facility.store.tasks import TaskStore
from gateway.deadletter import DeadLetters
from gateway.mqtt import topic_filters
from gateway.service import Gateway
from rules.service import RulesService
from tests.simulators.conftest import until
from testsupport.servers import Mosquitto

PREFIX = "estate/t/elevators"
LOST_AFTER_S = 2  # the comm-loss rule's `for`, short so that the test is

RULES = f"""\
rules:
  - id: device-offline
    title: {{zh: "{{device_name}} 通讯中断", en: "{{device_name}}: communication lost"}}
    devices: {{}}
    when: offline()
    for: {LOST_AFTER_S}s
    priority: high
    outcome: both
    task: {{kind: repair, team: controls, sla: 4h}}
"""


def write_site(folder: Path, broker: Mosquitto) -> Site:
    """Two elevators on MQTT (so that the site's prefix is their shared folder), data due a minute
    apart: only their status topics speak in these tests."""
    (folder / "rules.yaml").write_text(RULES)
    path = folder / "site.yaml"
    path.write_text(
        "site: {id: t}\n"
        f'broker: {{url: "{broker.url}"}}\n'
        "use_rule_library: false\n"
        "rules: [rules.yaml]\n"
        "devices:\n"
        f"  - {{id: lift-1, profile: elevator, mqtt: {{topic: {PREFIX}/lift-1/state, interval: 60s}}}}\n"
        f"  - {{id: lift-2, profile: elevator, mqtt: {{topic: {PREFIX}/lift-2/state, interval: 60s}}}}\n"
    )
    return load_site(path)


@dataclass
class Rig:
    gateway: Gateway
    store: OpsStore
    events: asyncio.Queue[Event]
    readings: list[Reading]  # every reading the bus carried
    live: LiveValues  # the desk's live view, on the same bus as the runtime wires it


@asynccontextmanager
async def running(tmp_path: Path, broker: Mosquitto) -> AsyncIterator[Rig]:
    """Gateway and rules of the site on one bus, on a fresh ops store."""
    site = write_site(tmp_path, broker)
    store = OpsStore(f"sqlite+aiosqlite:///{tmp_path / 'ops.db'}", site="t")
    await store.start()
    bus = LocalBus()
    rules = RulesService(site, bus, store, tmp_path / "journal")
    await rules.start()
    gateway = Gateway(site, bus, DeadLetters(store))
    readings: list[Reading] = []
    bus.on_readings(readings.extend)
    live = LiveValues()
    bus.on_readings(live.update)
    bus.on_status(live.device_status)
    try:
        with bus.subscribe() as events:
            await gateway.start()
            try:
                yield Rig(gateway, store, events, readings, live)
            finally:
                await gateway.stop()
    finally:
        await rules.stop()
        await store.close()


@asynccontextmanager
async def publisher(broker: Mosquitto) -> AsyncIterator[MqttClient]:
    client = MqttClient("127.0.0.1", broker.port)
    await client.start()
    try:
        yield client
    finally:
        await client.stop()


async def alarm_of(events: asyncio.Queue[Event], device: str, timeout: float) -> list[Event]:
    """Bus events up to and including the first alarm event of `device`."""
    seen: list[Event] = []
    while True:
        event = await asyncio.wait_for(events.get(), timeout)
        seen.append(event)
        if event.kind == "alarm" and event.data.get("device") == device:
            return seen


async def test_online_soon_after_offline_raises_no_communication_loss(tmp_path: Path, mosquitto: Mosquitto) -> None:
    async with running(tmp_path, mosquitto) as rig:
        async with publisher(mosquitto) as devices:
            devices.publish(f"{PREFIX}/lift-1/status", b"offline", qos=1)
            await asyncio.sleep(0.1)  # the scenario: a unit that reconnects 0.1 s later
            devices.publish(f"{PREFIX}/lift-1/status", b"online", qos=1)
            devices.publish(f"{PREFIX}/lift-2/status", b"offline", qos=1)  # and one that stays away

            # lift-2, offline since after lift-1 came back, is lost once the rule's time is up;
            # by then lift-1 would have been too, had its online been ignored.
            before = await alarm_of(rig.events, "lift-2", timeout=LOST_AFTER_S + 10)
            tasks = TaskStore(rig.store)
            opened = await until(lambda: tasks.list(0))
            assert [a.data.get("device") for a in before if a.kind == "alarm"] == ["lift-2"]
            assert [(t.device, t.source["rule"]) for t in opened] == [("lift-2", "device-offline")]


async def test_a_device_on_a_misspelt_topic_is_counted_and_a_dead_letter_once_a_minute(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    misspelt, stray = f"{PREFIX}/lift-l/state", f"{PREFIX}/lift-2/config"
    async with running(tmp_path, mosquitto) as rig:
        ingest = rig.gateway.ingest
        async with publisher(mosquitto) as devices:
            # The service's own topics are not under the site's prefix: never read as a device's.
            devices.publish("facility/v1/readings/t/lift-1", b"{}", qos=1)
            for n in range(5):
                devices.publish(misspelt, json.dumps({"counters": {"trips": n}}), qos=1)
            devices.publish(stray, b"{}", qos=1)
            devices.publish(f"{PREFIX}/lift-1/state", json.dumps({"counters": {"trips": 9}}), qos=1)
            # In order from one publisher: once the good document is in, all before it are too.
            await until(lambda: any(r.point == "trips" and r.value == 9 for r in rig.readings))
        assert (ingest.received, ingest.unknown) == (7, 6)

        async def stored() -> list[tuple[str, str]] | None:
            await rig.gateway.dead_letters.flush()
            letters = [(d.key, d.reason) for d in await rig.store.letters.recent()]
            return letters if len(letters) >= 2 else None

        unknown = "no device has this topic"
        assert sorted(await until(stored)) == sorted([(misspelt, unknown), (stray, unknown)])
        registry = CollectorRegistry(auto_describe=False)
        registry.register(ReadinessCollector(Readiness([rig.gateway])))
        assert "facility_mqtt_unknown_topic_messages_total 6.0" in generate_latest(registry).decode().splitlines()


def test_the_site_is_subscribed_by_its_prefixes_never_over_the_services_own_topics() -> None:
    assert topic_filters(
        {
            "estate/b1/lift-1/state": 1,
            "estate/b1/lift-1/status": 1,
            "estate/b2/door-1/state": 0,
            "vendor/x/unit/state": 0,  # alone in its first level: its own folder
            "vendor/x/unit/status": 1,
            "flat": 1,  # a single level: nothing to share
            "facility/b1/sump/state": 1,  # a prefix `facility/#` would take in facility/v1/...
            "facility/b2/sump/state": 1,
        }
    ) == [
        ("estate/#", 1),
        ("vendor/x/unit/#", 1),
        ("flat", 1),
        ("facility/b1/sump/state", 1),
        ("facility/b2/sump/state", 1),
    ]
