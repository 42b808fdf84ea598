"""Public lighting: a panel whose photocell switches four street-light circuits at dusk and dawn."""

from __future__ import annotations

import random
from typing import Any, ClassVar

from facility.model import Value
from simulators.models.base import DeviceModel, FaultError, daylight

CIRCUITS = range(1, 5)
ON_BELOW_LUX = 50.0  # dusk: switch on below this
OFF_ABOVE_LUX = 100.0  # dawn: switch off above this; the gap keeps a cloud from toggling the lights
LIT_A = 4.5  # current of a circuit with all its lamps working
FAILED_A = 0.3  # what is left when the lamps have failed: drivers and control gear only


class LightingPanel(DeviceModel):
    """Contactor feedback follows the command; current follows the contactor and the lamps."""

    type = "lighting_panel"
    FAULTS: ClassVar[dict[str, str]] = {
        "lamp_failure": "the lamps of one circuit (param circuit: 1-4, default 1) fail: lit, it draws ~0.3 A",
        "lights_on_daytime": "all circuits are commanded on whatever the light level (stuck controller)",
        "photocell_failure": "the photocell reports 'not available'; the panel keeps all circuits on (fail-safe)",
    }
    FLAP: ClassVar[tuple[str, Value, Value]] = ("lux", 30, 150)

    def __init__(self, device_id: str, rng: random.Random) -> None:
        super().__init__(device_id, rng)
        self.dark = False  # the photocell's switching state, with hysteresis

    def check_params(self, fault: str, params: dict[str, Any]) -> None:
        if fault == "lamp_failure":
            circuit = params.get("circuit", 1)
            if set(params) - {"circuit"} or isinstance(circuit, bool) or circuit not in CIRCUITS:
                raise FaultError("lamp_failure takes {circuit: 1 to 4}")
        else:
            super().check_params(fault, params)

    def update(self, dt: float, t: float) -> None:
        lux: int | None = None
        if "photocell_failure" not in self.faults:
            light = daylight(t)
            lux = round(min(65534.0, max(0.0, self.jitter(light, 1.0 + 0.03 * light))))
            if lux < ON_BELOW_LUX:
                self.dark = True
            elif lux > OFF_ABOVE_LUX:
                self.dark = False
        command = self.dark or lux is None or "lights_on_daytime" in self.faults
        failed = self.faults["lamp_failure"].get("circuit", 1) if "lamp_failure" in self.faults else None
        values: dict[str, Value] = {"lux": lux}
        for c in CIRCUITS:
            values[f"circuit_{c}_command"] = command
            values[f"circuit_{c}_on"] = command
            current = self.jitter(FAILED_A if c == failed else LIT_A, 0.05 if c == failed else 0.15)
            values[f"circuit_{c}_current"] = round(current, 2) if command else 0.0
        self.values = values
