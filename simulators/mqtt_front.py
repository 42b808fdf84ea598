"""MQTT front end: each device publishes its points as one JSON document on its topic."""

from __future__ import annotations

import json
from typing import Any

from facility.jsonpath import put
from facility.profile import Profile
from simulators.models import DeviceModel


def payload(profile: Profile, model: DeviceModel) -> bytes:
    """The JSON document a real device of this profile would send for the model's values."""
    doc: dict[str, Any] = {}
    for name, spec in profile.points.items():
        if spec.json_path and name in model.values:
            put(doc, spec.json_path, model.values[name])
    return json.dumps(doc, separators=(",", ":")).encode()
