"""MQTT ingest: maps each device's topic and JSON paths to readings.

Paths are compiled once at start; the per-message work is one JSON decode and one lookup per
point. A payload that cannot be used is counted and logged once per topic, never raised.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from facility.jsonpath import MISSING, getter
from facility.model import Quality, Reading, Value
from facility.mqtt import Message
from facility.site import Site

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _PointReader:
    name: str
    get: Callable[[Any], Any]
    value_type: str


def _coerce(value: Any, value_type: str) -> Value | object:
    """The value if it has the profile's type, else MISSING (a bad value)."""
    if value_type == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif value_type == "bool":
        ok = isinstance(value, bool)
    else:
        ok = isinstance(value, str)
    return value if ok else MISSING


class MqttIngest:
    def __init__(self, site: Site, publish: Callable[[list[Reading]], None]) -> None:
        self._publish = publish
        self._by_topic: dict[str, tuple[str, list[_PointReader]]] = {}
        self.subscriptions: list[tuple[str, int]] = []
        for device in site.devices:
            if device.mqtt is None:
                continue
            profile = site.profile_of(device)
            readers = [
                _PointReader(name, getter(spec.json_path), spec.value_type)
                for name, spec in profile.points.items()
                if spec.json_path
            ]
            self._by_topic[device.mqtt.topic] = (device.id, readers)
            self.subscriptions.append((device.mqtt.topic, device.mqtt.qos))
        self.rejected: Counter[str] = Counter()  # reason -> count

    def handle(self, batch: list[Message]) -> None:
        readings: list[Reading] = []
        for topic, payload in batch:
            entry = self._by_topic.get(topic)
            if entry is None:
                self._reject(topic, "no device has this topic")
                continue
            device, readers = entry
            try:
                obj = json.loads(payload)
            except ValueError:
                self._reject(topic, "payload is not JSON")
                continue
            ts = time.time_ns()
            for reader in readers:
                raw = reader.get(obj)
                if raw is MISSING:
                    continue  # a payload may carry only the points that changed
                value = _coerce(raw, reader.value_type)
                if value is MISSING:
                    self._reject(topic, f"{reader.name} is not a {reader.value_type}")
                    readings.append(Reading(device, reader.name, None, Quality.BAD, ts))
                else:
                    readings.append(Reading(device, reader.name, value, Quality.GOOD, ts))  # type: ignore[arg-type]
        if readings:
            self._publish(readings)

    def _reject(self, topic: str, reason: str) -> None:
        key = f"{topic}: {reason}"
        if key not in self.rejected:
            log.warning("MQTT message rejected on %s", key)
        self.rejected[key] += 1
