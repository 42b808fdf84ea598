"""MQTT ingest: maps each device's topic and JSON paths to readings, and its status topic to
online/offline.

Paths are compiled once at start; the per-message work is one JSON decode and one lookup per
point. A payload that cannot be used (not JSON, too large, a value of the wrong type, an
implausible source time) is counted and kept as a dead letter; the ingest never raises on input.

The gateway subscribes to the site's topic prefixes rather than to each device's topic, so that a
device publishing on a misspelt topic is seen: whatever arrives under a prefix on a topic no
device has is counted, and kept as a dead letter once a minute per topic (a chatty device on a
wrong topic must not fill the dead-letter table).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from facility.jsonpath import MISSING, getter
from facility.model import Quality, Reading
from facility.mqtt_delivery import Message
from facility.site import Site

MAX_PAYLOAD_BYTES = 64 * 1024  # a device document is a few hundred bytes; larger is garbage
EARLIEST_MS = 946_684_800_000  # 2000-01-01: anything earlier is a clock that was never set
FUTURE_SLACK_MS = 86_400_000  # a device clock may run a day fast; more is a unit error
UNKNOWN_TOPIC_EVERY_NS = 60 * 1_000_000_000  # at most one dead letter per unknown topic per minute
UNKNOWN_TOPICS_KEPT = 10_000  # unknown topics remembered for that limit; older ones are forgotten first
SERVICE_LEVELS = ("facility", "v1")  # the service's own topics (facility/v1/#): never under a device prefix
ONLINE, OFFLINE = b"online", b"offline"
_decode = msgspec.json.Decoder().decode  # 10x the stdlib's speed on small documents

DeadLetterSink = Callable[[str, str, str, bytes | bytearray | str], None]
StatusSink = Callable[[str, bool], None]


@dataclass(frozen=True)
class _PointReader:
    name: str
    get: Callable[[Any], Any]
    value_type: str


@dataclass(frozen=True)
class _DeviceTopic:
    device: str
    points: list[_PointReader]
    timestamp: Callable[[Any], Any] | None  # the document's own time, in ms since the epoch


def topic_filters(topics: dict[str, int]) -> list[tuple[str, int]]:
    """The subscriptions that take in every topic given (topic -> QoS), and what else is published
    beside them: per first level, the leading levels the topics share, with `#`.

    A group that shares no level but its last, or whose prefix would take in the service's own
    `facility/v1/...` (the gateway would read the readings and events it publishes), keeps its
    exact topics. A prefix is subscribed at the highest QoS of its topics (the broker delivers at
    the lower of that and the publisher's).
    """
    groups: dict[str, list[str]] = {}
    for topic in topics:
        groups.setdefault(topic.split("/", 1)[0], []).append(topic)
    filters: list[tuple[str, int]] = []
    for members in groups.values():
        common = members[0].split("/")[:-1]
        for topic in members[1:]:
            levels = topic.split("/")[:-1]
            shared = 0
            while shared < min(len(common), len(levels)) and common[shared] == levels[shared]:
                shared += 1
            common = common[:shared]
        reach = min(len(common), len(SERVICE_LEVELS))
        if tuple(common[:reach]) == SERVICE_LEVELS[:reach]:  # no shared level, or the service's own
            filters += [(topic, topics[topic]) for topic in members]
        else:
            filters.append(("/".join(common) + "/#", max(topics[topic] for topic in members)))
    return filters


def _typed(value: Any, value_type: str) -> bool:
    if value_type == "number":  # NaN and infinities are not measurements
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if value_type == "bool":
        return isinstance(value, bool)
    return isinstance(value, str)


class MqttIngest:
    def __init__(
        self,
        site: Site,
        publish: Callable[[list[Reading]], None],
        on_status: StatusSink,
        dead_letter: DeadLetterSink,
    ) -> None:
        self._publish = publish
        self._on_status = on_status
        self._dead_letter = dead_letter
        self._data: dict[str, _DeviceTopic] = {}
        self._status: dict[str, str] = {}  # status topic -> device
        self.points: dict[str, list[str]] = {}  # device -> its points
        topics: dict[str, int] = {}  # every device topic -> its QoS
        for device in site.devices:
            if device.mqtt is None:
                continue
            profile = site.profile_of(device)
            readers = [
                _PointReader(name, getter(spec.json_path), spec.value_type)
                for name, spec in profile.points.items()
                if spec.json_path
            ]
            ts = getter(profile.timestamp_json) if profile.timestamp_json else None
            self._data[device.mqtt.topic] = _DeviceTopic(device.id, readers, ts)
            self._status[device.mqtt.status] = device.id
            self.points[device.id] = [r.name for r in readers]
            topics[device.mqtt.topic] = device.mqtt.qos
            topics[device.mqtt.status] = 1
        self.subscriptions = topic_filters(topics)
        self.received = 0
        self.unknown = 0  # messages on a topic no device has
        self._unknown_told: dict[str, int] = {}  # unknown topic -> when it was last kept as a dead letter (ns)
        self._last_ts = 0  # the receive time given to the last message (ns)

    def handle(self, batch: list[Message]) -> None:
        """Readings of a batch of messages, each message stamped with a time of its own.

        A batch of messages is read at once, so a backlog after a reconnect would otherwise give
        hundreds of messages one receive time, and stores keyed on (device, point, time) would keep
        one of them. The receive times are the clock's, moved on by a nanosecond per message where
        the clock has not, so that they are distinct and keep the order the broker delivered in.
        """
        readings: list[Reading] = []
        now = max(time.time_ns(), self._last_ts + 1)
        for topic, payload in batch:
            now += 1
            self.received += 1
            entry = self._data.get(topic)
            if entry is None and readings and topic in self._status:
                self._publish(readings)  # a status is handed on after the values that came before it
                readings = []
            try:
                if entry is None:
                    self._other(topic, payload, now, readings)
                else:
                    self._document(entry, topic, payload, now, readings)
            except Exception as exc:  # one message must never sink its batch
                self._dead_letter("mqtt", topic, f"could not be read: {type(exc).__name__}: {exc}", payload)
        self._last_ts = now
        if readings:
            self._publish(readings)

    def _document(
        self, entry: _DeviceTopic, topic: str, payload: bytes | bytearray, now: int, readings: list[Reading]
    ) -> None:
        if len(payload) > MAX_PAYLOAD_BYTES:
            self._dead_letter("mqtt", topic, f"payload of {len(payload)} bytes is over {MAX_PAYLOAD_BYTES}", payload)
            return
        try:
            doc = _decode(payload)
        except msgspec.DecodeError as exc:
            self._dead_letter("mqtt", topic, f"not JSON: {exc}", payload)
            return
        if not isinstance(doc, dict):
            self._dead_letter("mqtt", topic, f"not a JSON object but {type(doc).__name__}", payload)
            return
        ms: Any = entry.timestamp(doc) if entry.timestamp is not None else MISSING
        if ms is MISSING:
            ts = now
        elif _typed(ms, "number") and EARLIEST_MS <= ms <= now // 1_000_000 + FUTURE_SLACK_MS:
            ts = int(ms * 1_000_000)
        else:
            # A dead letter as a whole: its values, dated at the receive time instead, could be
            # hours away from when they were measured.
            reason = f"timestamp {ms!r} is not a plausible time in ms since the epoch; no value of it is used"
            self._dead_letter("mqtt", topic, reason, payload)
            return
        wrong = []
        for reader in entry.points:
            value = reader.get(doc)
            if value is MISSING:
                continue  # a document may carry only the points that changed
            if _typed(value, reader.value_type):
                readings.append(Reading(entry.device, reader.name, value, Quality.GOOD, ts))
            else:
                readings.append(Reading(entry.device, reader.name, None, Quality.BAD, ts))
                wrong.append(f"{reader.name} is {value!r}, not a {reader.value_type}")
        if wrong:
            self._dead_letter("mqtt", topic, "; ".join(wrong), payload)

    def _other(self, topic: str, payload: bytes | bytearray, now: int, readings: list[Reading]) -> None:
        device = self._status.get(topic)
        if device is None:
            self._unknown_topic(topic, payload, now)
        elif payload == ONLINE:
            # Heard from, with no values yet: a status, not readings. Its points keep their last
            # value and quality until its next document; the rule engine takes the status itself.
            self._on_status(device, True)
        elif payload == OFFLINE:
            self._on_status(device, False)
            readings.extend(Reading(device, p, None, Quality.NO_COMM, now) for p in self.points[device])
        else:
            self._dead_letter("mqtt", topic, "status is neither online nor offline", payload)

    def _unknown_topic(self, topic: str, payload: bytes | bytearray, now: int) -> None:
        """Count a message under a site prefix on a topic no device has; keep it as a dead letter
        if its topic has not been kept within the last minute."""
        self.unknown += 1
        told = self._unknown_told.get(topic)
        if told is not None and now - told < UNKNOWN_TOPIC_EVERY_NS:
            return
        if told is None and len(self._unknown_told) >= UNKNOWN_TOPICS_KEPT:
            self._unknown_told = {t: at for t, at in self._unknown_told.items() if now - at < UNKNOWN_TOPIC_EVERY_NS}
        self._unknown_told[topic] = now
        self._dead_letter("mqtt", topic, "no device has this topic", payload)
