"""Elevators and access doors, seen as the gateway sees them: JSON on their MQTT topics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.simulators.conftest import MqttProbe, simulated, until
from testsupport.servers import Mosquitto

LIFT = "  - {id: lift-1, profile: elevator, mqtt: {topic: t/lift-1/state, interval: 1s}}\n"
DOOR = "  - {id: door-1, profile: access_door, mqtt: {topic: t/door-1/state, interval: 1s}}\n"


def latest(probe: MqttProbe, topic: str, check: Any) -> Any:
    doc = probe.latest_json(topic)
    return doc if doc is not None and check(doc) else None


async def test_elevator_publishes_its_state_and_faults(tmp_path: Path, mosquitto: Mosquitto) -> None:
    async with MqttProbe("127.0.0.1", mosquitto.port) as probe, simulated(tmp_path, LIFT, mosquitto.url) as (_s, host):
        topic = "t/lift-1/state"
        doc = await until(lambda: latest(probe, topic, lambda d: "car" in d))
        assert set(doc) >= {"car", "door", "alarm_button", "fault_code", "mode", "counters", "ts"}
        assert 1 <= doc["car"]["floor"] <= 18 and doc["mode"] == "normal"

        await host.inject("lift-1", "entrapment")
        trapped = lambda d: d["alarm_button"] and not d["car"]["in_door_zone"] and not d["door"]["open"]  # noqa: E731
        doc = await until(lambda: latest(probe, topic, trapped), timeout=5)
        assert doc["car"]["moving"] is False
        await host.clear("lift-1")
        await until(lambda: latest(probe, topic, lambda d: d["car"]["in_door_zone"] and d["door"]["open"]), 20)

        await host.inject("lift-1", "door_fault")
        cycles = (await until(lambda: latest(probe, topic, lambda d: d["fault_code"] == 31)))["door"]["cycles"]
        await until(lambda: latest(probe, topic, lambda d: d["door"]["cycles"] >= cycles + 2), 10)  # keeps reopening
        await host.clear("lift-1")

        await host.inject("lift-1", "out_of_service")
        await until(lambda: latest(probe, topic, lambda d: d["mode"] == "out_of_service" and not d["door"]["open"]), 20)
        await host.clear("lift-1")
        await until(lambda: latest(probe, topic, lambda d: d["mode"] == "normal"))


async def test_door_forced_and_held_open(tmp_path: Path, mosquitto: Mosquitto) -> None:
    async with MqttProbe("127.0.0.1", mosquitto.port) as probe, simulated(tmp_path, DOOR, mosquitto.url) as (_s, host):
        topic = "t/door-1/state"
        await until(lambda: latest(probe, topic, lambda d: "door" in d))
        await host.inject("door-1", "door_forced")
        doc = await until(lambda: latest(probe, topic, lambda d: d["alarms"]["forced"]), 5)
        assert doc["door"]["open"] is True and doc["last_event"] == "forced"
        await host.clear("door-1")
        await until(lambda: latest(probe, topic, lambda d: not d["alarms"]["forced"]))

        await host.inject("door-1", "held_open")
        doc = await until(lambda: latest(probe, topic, lambda d: d["alarms"]["held"]), 5)
        assert doc["door"]["open_s"] >= 30 and doc["last_event"] == "held_open"
        await host.clear("door-1")
        await until(lambda: latest(probe, topic, lambda d: not d["alarms"]["held"]), 10)
