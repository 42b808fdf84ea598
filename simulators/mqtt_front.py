"""MQTT front end: each device has its own connection, as a real monitoring unit has.

A device publishes its points as one JSON document on its topic, periodically and at once when a
discrete value changes, and keeps a retained `online`/`offline` status with a last will. The
common faults act here: `comm_loss` cuts the connection (the broker publishes the will), `slow`
publishes rarely, `garbage` sends malformed JSON or wrongly typed values.

On a broker with a user per device (deploy/mosquitto.conf), a simulated device connects as the
real one would: as its id, with its own password (DevicePasswords). Over `mqtts://` it checks
the broker's certificate against the site's `broker.ca_file`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from facility.jsonpath import put
from facility.model import Value
from facility.mqtt import MqttClient
from facility.mqtt_settings import Broker
from facility.profile import Profile
from facility.site import Device
from facility.yamlfile import ConfigError, Problem
from simulators.models import DeviceModel

SLOW_FACTOR = 10  # a slow device publishes this many times less often, and not on change
ONLINE, OFFLINE = b"online", b"offline"
DEVICE_PASSWORDS_ENV = "FACILITY_MQTT_DEVICE_PASSWORDS"


def payload(profile: Profile, values: Mapping[str, Value], ts_ms: int | None = None) -> bytes:
    """The JSON document a real device of this profile sends for these values."""
    doc: dict[str, Any] = {}
    for name, spec in profile.points.items():
        if spec.json_path and name in values:
            put(doc, spec.json_path, values[name])
    if profile.timestamp_json and ts_ms is not None:
        put(doc, profile.timestamp_json, ts_ms)
    return json.dumps(doc, separators=(",", ":")).encode()


class DevicePasswords:
    """The devices' own broker passwords, for simulators standing in for the devices.

    The file that FACILITY_MQTT_DEVICE_PASSWORDS names holds one `DEVICE-ID:PASSWORD` line per
    device: the plain form `mosquitto_passwd -U` hashes, so one secret feeds both the broker's
    password file and the simulators, and no password sits in the site file or on a command
    line. Blank lines are skipped; errors name the line, never its content."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._passwords: dict[str, str] = {}
        problems = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            user, colon, password = line.partition(":")
            if colon and user and password:
                self._passwords[user] = password
            else:
                problems.append(Problem(str(path), n, "", "expected DEVICE-ID:PASSWORD"))
        if problems:
            raise ConfigError(problems)

    @classmethod
    def from_environment(cls) -> DevicePasswords | None:
        """The file FACILITY_MQTT_DEVICE_PASSWORDS names; None without it, and the devices then
        connect as the site's broker user (a development broker with one user, or none)."""
        path = os.environ.get(DEVICE_PASSWORDS_ENV)
        return cls(Path(path)) if path else None

    def login(self, device_id: str) -> tuple[str, str]:
        """(user, password) of one device: its id, and its line of the file."""
        if device_id not in self._passwords:
            raise ConfigError([Problem(str(self.path), None, "", f"no line for device {device_id}")])
        return device_id, self._passwords[device_id]


class MqttDevice:
    def __init__(
        self,
        device: Device,
        profile: Profile,
        model: DeviceModel,
        broker: Broker,
        login: tuple[str, str] | None = None,
    ) -> None:
        """`login` is the device's own (user, password); without it the site's broker user."""
        assert device.mqtt is not None
        self.binding = device.mqtt
        self.profile = profile
        self.model = model
        self.client = MqttClient.of(
            broker,
            login,
            client_id=f"sim-{device.id}",
            will=(self.binding.status, OFFLINE, 1, True),
            birth=(self.binding.status, ONLINE, 1, True),
        )
        self._next = 0.0
        self._sent: dict[str, Value] = {}
        self._garbage_turn = 0
        self._dropped = False

    async def start(self) -> None:
        await self.client.start()

    async def stop(self) -> None:
        if self._dropped:  # already cut off; its status is the broker's last will
            return
        self.client.publish(self.binding.status, OFFLINE, qos=1, retain=True)  # an orderly goodbye
        await self.client.stop()

    async def tick(self, now: float, force: bool = False) -> None:
        """Publish if the interval has passed, a discrete value changed, or `force`."""
        faults = self.model.faults
        if "comm_loss" in faults:
            if not self._dropped:
                self._dropped = True
                await self.client.drop()
            return
        if self._dropped:
            self._dropped = False
            await self.client.resume()
            force = True
        values = self.model.values
        slow = "slow" in faults
        changed = not slow and any(values.get(k) != v for k, v in self._sent.items() if not isinstance(v, float))
        if not (force or changed or now >= self._next):
            return
        interval = self.binding.interval * (SLOW_FACTOR if slow else 1)
        self._next = now + interval
        self._sent = dict(values)
        data = self._garbage() if "garbage" in faults else payload(self.profile, values, time.time_ns() // 1_000_000)
        self.client.publish(self.binding.topic, data, qos=self.binding.qos)

    def _garbage(self) -> bytes:
        """Alternately a truncated document and one whose values have the wrong types."""
        self._garbage_turn += 1
        whole = payload(self.profile, self.model.values)
        if self._garbage_turn % 2:
            return whole[: max(1, len(whole) // 2)]
        wrong = {
            k: ("n/a" if isinstance(v, int | float) and not isinstance(v, bool) else 7)
            for k, v in self.model.values.items()
        }
        return payload(self.profile, wrong)
