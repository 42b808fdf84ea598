"""Fire alarm: a control panel with eight detection zones and a standby battery."""

from __future__ import annotations

import random
from typing import Any, ClassVar

from facility.model import Value
from simulators.models.base import DeviceModel, FaultError

ZONES = range(1, 9)
ISOLATED_ZONES = {8}  # isolated by design: the site has taken this zone out of service
FLOAT_V = 27.2  # a 24 V lead-acid battery on float charge
DISCHARGE_V_PER_S = 0.001  # without mains: flat in under two hours, quick enough to watch on the desk
FLAT_V = 21.0  # deep-discharge cut-off


class FirePanel(DeviceModel):
    """A quiet panel until a fault is given; the fire counter only ever counts up.

    A fire spreads rather than moves: `fire zone=5` given while zone 3 is in fire puts both in
    fire, as a panel latches each zone until it is reset (clearing the fault resets them all)."""

    type = "fire_panel"
    FAULTS: ClassVar[dict[str, str]] = {
        "fire": "a detector goes into alarm in one more zone (param zone: 1-8, default 1)",
        "zone_fault": "a zone reports an open or short circuit (param zone: 1-8, default 2)",
        "panel_mains_failure": "the panel loses mains and runs down its standby battery from 27.2 V",
        "battery_fault": "the standby battery is missing or failed: no voltage can be measured",
    }
    FLAP: ClassVar[tuple[str, Value, Value]] = ("zone_3_state", "normal", "fire")
    DEFAULT_ZONE: ClassVar[dict[str, int]] = {"fire": 1, "zone_fault": 2}

    def __init__(self, device_id: str, rng: random.Random) -> None:
        super().__init__(device_id, rng)
        self.fire_count = rng.randint(0, 30)  # fire events since commissioning, false alarms included
        self.burning: set[int] = set()  # the zones in fire at the last update
        self.battery = FLOAT_V

    def check_params(self, fault: str, params: dict[str, Any]) -> None:
        if fault in self.DEFAULT_ZONE:
            zone = params.get("zone", self.DEFAULT_ZONE[fault])
            if set(params) - {"zone"} or isinstance(zone, bool) or zone not in ZONES:
                raise FaultError(f"{fault} takes {{zone: 1 to 8}}")
        else:
            super().check_params(fault, params)

    def inject(self, fault: str, params: dict[str, Any] | None = None) -> None:
        """A fire in a further zone joins those already in fire: the fault's params list them all."""
        burning = self._fire_zones()
        super().inject(fault, params)
        if fault == "fire":
            zone = self.faults["fire"].get("zone", self.DEFAULT_ZONE["fire"])
            self.faults["fire"] = {"zones": sorted({*burning, zone})}

    def _fire_zones(self) -> set[int]:
        return set(self.faults["fire"]["zones"]) if "fire" in self.faults else set()

    def _zone_of(self, fault: str) -> int | None:
        if fault not in self.faults:
            return None
        zone: int = self.faults[fault].get("zone", self.DEFAULT_ZONE[fault])
        return zone

    def update(self, dt: float, t: float) -> None:
        fire_zones, fault_zone = self._fire_zones(), self._zone_of("zone_fault")
        self.fire_count += len(fire_zones - self.burning)  # each zone going into fire is one event
        self.burning = fire_zones
        states = {z: "isolated" if z in ISOLATED_ZONES else "normal" for z in ZONES}
        if fault_zone is not None:
            states[fault_zone] = "fault"
        for zone in fire_zones:
            states[zone] = "fire"  # a fire outranks a fault in the same zone
        mains_fail = "panel_mains_failure" in self.faults
        battery_fault = "battery_fault" in self.faults
        if mains_fail:
            self.battery = max(FLAT_V, self.battery - DISCHARGE_V_PER_S * dt)
        else:
            self.battery = FLOAT_V  # the charger holds the battery at float voltage
        self.values = {
            **{f"zone_{z}_state": states[z] for z in ZONES},
            "mains_fail": mains_fail,
            "battery_fault": battery_fault,
            "silenced": False,
            "general_fire": bool(fire_zones),
            # Loss of mains and a failed battery are faults too, as EN 54-2 has panels show them.
            "general_fault": fault_zone is not None or mains_fail or battery_fault,
            "battery_voltage": None if battery_fault else round(self.jitter(self.battery, 0.01), 2),
            "fire_count": self.fire_count,
        }
