"""Public lighting: a panel whose photocell switches four street-light circuits at dusk and dawn."""

from __future__ import annotations

import random
from typing import Any, ClassVar

from facility.model import Value
from simulators.models.base import DeviceModel, FaultError, WriteRefused, daylight

CIRCUITS = range(1, 5)
ON_BELOW_LUX = 50.0  # dusk: switch on below this
OFF_ABOVE_LUX = 100.0  # dawn: switch off above this; the gap keeps a cloud from toggling the lights
LIT_A = 4.5  # current of a circuit with all its lamps working
FAILED_A = 0.3  # what is left when the lamps have failed: drivers and control gear only


class LightingPanel(DeviceModel):
    """Contactor feedback follows the command; current follows the contactor and the lamps.

    A master can write a circuit's command coil: a manual override of the photocell for that
    circuit. It holds until the photocell next switches (dusk or dawn), when every circuit returns
    to automatic, as "manual until the next switching point" on real panels; to hand a circuit back
    sooner, write the command the photocell gives. A stuck controller (`lights_on_daytime`) keeps
    every circuit on whatever is written.
    """

    type = "lighting_panel"
    FAULTS: ClassVar[dict[str, str]] = {
        "lamp_failure": "the lamps of one circuit (param circuit: 1-4, default 1) fail: lit, it draws ~0.3 A",
        "lights_on_daytime": "all circuits are commanded on whatever the light level (stuck controller)",
        "photocell_failure": "the photocell reports 'not available'; the panel keeps all circuits on (fail-safe)",
    }
    FLAP: ClassVar[tuple[str, Value, Value]] = ("lux", 30, 150)
    WRITABLE: ClassVar[frozenset[str]] = frozenset(f"circuit_{c}_command" for c in CIRCUITS)

    def __init__(self, device_id: str, rng: random.Random) -> None:
        super().__init__(device_id, rng)
        self.dark = False  # the photocell's switching state, with hysteresis
        self.lux: int | None = None
        self.overrides: dict[int, bool] = {}  # circuit -> command written by a master

    def check_params(self, fault: str, params: dict[str, Any]) -> None:
        if fault == "lamp_failure":
            circuit = params.get("circuit", 1)
            if set(params) - {"circuit"} or isinstance(circuit, bool) or circuit not in CIRCUITS:
                raise FaultError("lamp_failure takes {circuit: 1 to 4}")
        else:
            super().check_params(fault, params)

    def accept(self, point: str, value: Value) -> None:
        if not isinstance(value, bool):
            raise WriteRefused(f"{point} takes on or off, not {value!r}", bad_value=True)
        self.overrides[int(point.split("_")[1])] = value
        self.values = self._outputs()

    def update(self, dt: float, t: float) -> None:
        self.lux = None
        if "photocell_failure" not in self.faults:
            light = daylight(t)
            self.lux = round(min(65534.0, max(0.0, self.jitter(light, 1.0 + 0.03 * light))))
            was_dark = self.dark
            if self.lux < ON_BELOW_LUX:
                self.dark = True
            elif self.lux > OFF_ABOVE_LUX:
                self.dark = False
            if self.dark != was_dark:
                self.overrides.clear()  # dusk or dawn: back to automatic
        self.values = self._outputs()

    def _outputs(self) -> dict[str, Value]:
        automatic = self.dark or self.lux is None
        stuck = "lights_on_daytime" in self.faults
        failed = self.faults["lamp_failure"].get("circuit", 1) if "lamp_failure" in self.faults else None
        values: dict[str, Value] = {"lux": self.lux}
        for c in CIRCUITS:
            command = stuck or self.overrides.get(c, automatic)
            values[f"circuit_{c}_command"] = command
            values[f"circuit_{c}_on"] = command
            current = self.jitter(FAILED_A if c == failed else LIT_A, 0.05 if c == failed else 0.15)
            values[f"circuit_{c}_current"] = round(current, 2) if command else 0.0
        return values
