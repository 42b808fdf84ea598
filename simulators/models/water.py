"""Water plant: booster pumps, the roof tank they feed, and basement sump pits."""

from __future__ import annotations

import math
import random
from typing import Any, ClassVar

from facility.model import Value
from simulators.models.base import DeviceModel, FaultError, WriteRefused

DRY_RUN_TRIP_S = 5.0  # drives trip on dry-run protection after this long without inlet water


def demand(t: float) -> float:
    """Domestic water demand, 0..1: low at night, peaks in the morning and the evening."""
    hours = t / 3600
    morning = math.exp(-(((hours - 7.5) / 1.5) ** 2))
    evening = math.exp(-(((hours - 19.5) / 2.0) ** 2))
    return 0.15 + 0.55 * morning + 0.5 * evening


class BoosterPump(DeviceModel):
    """A VFD pump holding its outlet pressure at the setpoint against demand.

    The setpoint can be written (holding register `pressure_setpoint`); the drive takes 0 to 1 MPa
    and refuses more, and the outlet pressure follows a new setpoint within a few seconds.
    """

    type = "booster_pump"
    FAULTS: ClassVar[dict[str, str]] = {
        "low_pressure": "outlet pressure falls to about 0.15 MPa while the pump runs flat out (burst main)",
        "overload_trip": "motor current spikes and the drive trips on overcurrent; pressure falls to mains",
        "dry_run": "inlet water is lost: current drops, pressure collapses, the drive trips after 5 s",
        "vibration_rising": "bearing wear: vibration climbs about 1.3 mm/s a day (compress with a scenario)",
        "flow_meter_fault": "the flow meter reports 'not available' (its sentinel)",
    }
    FLAP: ClassVar[tuple[str, Value, Value]] = ("outlet_pressure", 0.45, 0.2)
    SETPOINT = 0.45  # MPa, until a master writes another
    SETPOINT_MAX = 1.0  # MPa: the most the drive accepts
    WRITABLE: ClassVar[frozenset[str]] = frozenset({"pressure_setpoint"})
    VIBRATION_PER_S = 1.3 / 86400  # mm/s of vibration added per model second of bearing wear

    def __init__(self, device_id: str, rng: random.Random) -> None:
        super().__init__(device_id, rng)
        self.run_hours = rng.uniform(1000, 9000)
        self.setpoint = self.SETPOINT
        self.pressure = self.setpoint
        self.vibration = rng.uniform(1.2, 2.0)
        self.temperature = 45.0
        self.dry_for = 0.0

    def update(self, dt: float, t: float) -> None:
        faults = self.faults
        want = demand(t)
        inlet = 0.0 if "dry_run" in faults else self.jitter(0.15, 0.005)
        self.dry_for = self.dry_for + dt if "dry_run" in faults else 0.0
        fault_code = "none"
        if "overload_trip" in faults:
            fault_code = "overcurrent"
        elif self.dry_for >= DRY_RUN_TRIP_S:
            fault_code = "dry_run"
        running = fault_code == "none"
        if not running:
            target, frequency, current = 0.12 if inlet else 0.0, 0.0, 0.0
        elif "dry_run" in faults:
            target, frequency, current = 0.02, 50.0, 4.0  # spinning in air: no load, no pressure
        elif "low_pressure" in faults:
            target, frequency, current = 0.15, 50.0, 21.0
        else:
            frequency = min(50.0, 28.0 + 24.0 * want)
            target, current = self.setpoint, 6.0 + 14.0 * (frequency / 50.0) ** 2
        self.pressure += (target - self.pressure) * min(1.0, dt / 2.0)
        if "vibration_rising" in faults:
            self.vibration += self.VIBRATION_PER_S * dt
        if running:
            self.run_hours += dt / 3600
        self.temperature += ((40.0 + current) - self.temperature) * min(1.0, dt / 600.0)
        self.values = {
            "outlet_pressure": max(0.0, self.jitter(self.pressure, 0.002)),
            "pressure_setpoint": self.setpoint,
            "frequency": frequency,
            "running": running,
            "tripped": not running,
            "remote": True,
            "fault_code": fault_code,
            "motor_current": self.jitter(current, 0.1) if current else 0.0,
            "run_hours": int(self.run_hours),
            "flow": None if "flow_meter_fault" in faults else (round(want * 40.0, 1) if running else 0.0),
            "vibration": self.jitter(self.vibration, 0.05) if running else 0.0,
            "inlet_pressure": inlet,
            "motor_temperature": round(self.temperature, 1),
        }

    def accept(self, point: str, value: Value) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= self.SETPOINT_MAX:
            raise WriteRefused(f"setpoint {value!r} outside 0..{self.SETPOINT_MAX} MPa", bad_value=True)
        self.setpoint = float(value)
        self.values = {**self.values, "pressure_setpoint": self.setpoint}


class WaterTank(DeviceModel):
    """A roof tank filled through a valve with hysteresis and emptied by the building's demand."""

    type = "water_tank"
    FAULTS: ClassVar[dict[str, str]] = {
        "overflow": "the inlet valve sticks open: the tank fills past its high-level switch",
        "empty": "the supply to the tank fails: it drains until the low-level switch trips",
        "level_sensor_fault": "the level transmitter reports 'not available' (its sentinel)",
    }
    FLAP: ClassVar[tuple[str, Value, Value]] = ("level", 3.0, 4.8)
    HEIGHT = 5.0  # m
    FILL_PER_S = 0.004  # m/s with the valve open
    DRAW_PER_S = 0.002  # m/s at full demand

    def __init__(self, device_id: str, rng: random.Random) -> None:
        super().__init__(device_id, rng)
        self.level = rng.uniform(3.0, 4.0)
        self.valve_open = False

    def update(self, dt: float, t: float) -> None:
        if "overflow" in self.faults or self.level < 2.5:
            self.valve_open = True
        elif self.level > 4.5:
            self.valve_open = False
        supplied = self.valve_open and "empty" not in self.faults
        self.level += ((self.FILL_PER_S if supplied else 0.0) - self.DRAW_PER_S * demand(t)) * dt
        self.level = min(self.HEIGHT, max(0.0, self.level))
        self.values = {
            "level": None if "level_sensor_fault" in self.faults else round(self.level, 2),
            "high_level": self.level >= 4.7,
            "low_level": self.level <= 0.5,
            "inlet_valve_open": self.valve_open,
        }


class SumpPit(DeviceModel):
    """A pit filled by drainage; the duty pump starts at 1.2 m, the standby joins at 1.6 m."""

    type = "sump_pit"
    FAULTS: ClassVar[dict[str, str]] = {
        "inflow_surge": "storm water: inflow rises six-fold, beyond one pump's capacity",
        "pump_failure": "a pump (param pump: 1 or 2, default 1) fails: it reports a fault and will not run",
    }
    FLAP: ClassVar[tuple[str, Value, Value]] = ("high_float", False, True)
    AREA = 4.0  # m² of pit surface
    PUMP_M3H = 30.0
    DEPTH = 2.5  # m

    def __init__(self, device_id: str, rng: random.Random) -> None:
        super().__init__(device_id, rng)
        self.level = rng.uniform(0.5, 1.0)
        self.running = [False, False]
        self.starts = [rng.randint(2000, 9000), rng.randint(500, 3000)]

    def check_params(self, fault: str, params: dict[str, Any]) -> None:
        if fault == "pump_failure":
            if set(params) - {"pump"} or params.get("pump", 1) not in (1, 2):
                raise FaultError("pump_failure takes {pump: 1 or 2}")
        else:
            super().check_params(fault, params)

    def update(self, dt: float, t: float) -> None:
        failed = self.faults.get("pump_failure", {}).get("pump", 1) if "pump_failure" in self.faults else None
        inflow = (48.0 if "inflow_surge" in self.faults else 8.0) * self.jitter(1.0, 0.1)  # m³/h
        # Duty pump (1) and standby (2) with start/stop levels; a failed pump is skipped.
        for i, (start, stop) in enumerate(((1.2, 0.4), (1.6, 0.6))):
            if failed == i + 1:
                self.running[i] = False
            elif not self.running[i] and self.level >= start:
                self.running[i] = True
                self.starts[i] += 1
            elif self.running[i] and self.level <= stop:
                self.running[i] = False
        if failed == 1 and not self.running[1] and self.level >= 1.2:  # standby covers for the duty pump
            self.running[1] = True
            self.starts[1] += 1
        pumped = self.PUMP_M3H * sum(self.running)
        self.level += (inflow - pumped) / 3600 / self.AREA * dt
        self.level = min(self.DEPTH, max(0.0, self.level))
        self.values = {
            "level": round(self.level, 2),
            "inflow": round(inflow, 1),
            "high_float": self.level >= 1.8,
            "pump_1_running": self.running[0],
            "pump_2_running": self.running[1],
            "pump_1_fault": failed == 1,
            "pump_2_fault": failed == 2,
            "pump_1_starts": self.starts[0],
            "pump_2_starts": self.starts[1],
        }
