"""Device models: plausible values over time, and the faults each type can be given."""

from __future__ import annotations

import math
import random
from typing import ClassVar

from facility.model import Value


class UnknownFault(ValueError):
    pass


class DeviceModel:
    """One simulated device: `values` holds the current value of every point of its profile."""

    type: ClassVar[str]
    FAULTS: ClassVar[dict[str, str]]  # fault -> what it does, for the control API

    def __init__(self, device_id: str, rng: random.Random) -> None:
        self.device_id = device_id
        self.rng = rng
        self.faults: set[str] = set()
        self.values: dict[str, Value] = {}

    def inject(self, fault: str) -> None:
        if fault not in self.FAULTS:
            known = ", ".join(sorted(self.FAULTS))
            raise UnknownFault(f"{self.type} has no fault {fault!r} (known: {known})")
        self.faults.add(fault)

    def clear(self, fault: str | None = None) -> None:
        if fault is None:
            self.faults.clear()
        else:
            self.faults.discard(fault)

    def step(self, dt: float, t: float) -> None:
        """Advance the model by `dt` seconds; `t` is seconds since the start of the day."""
        raise NotImplementedError


class BoosterPump(DeviceModel):
    """A VFD booster pump holding its outlet pressure at the setpoint against daily demand."""

    type = "booster_pump"
    FAULTS: ClassVar[dict[str, str]] = {
        "low_pressure": "outlet pressure falls to about 0.15 MPa while the pump runs flat out",
        "tripped": "the drive trips: pump stops, pressure falls to mains pressure",
    }
    SETPOINT = 0.45  # MPa

    def __init__(self, device_id: str, rng: random.Random) -> None:
        super().__init__(device_id, rng)
        self.run_hours = rng.uniform(1000, 9000)
        self.pressure = self.SETPOINT

    def step(self, dt: float, t: float) -> None:
        # Demand peaks in the morning and evening, never quite zero.
        demand = 0.35 + 0.3 * max(0.0, math.sin((t / 86400 - 0.25) * 2 * math.pi)) + self.rng.uniform(-0.03, 0.03)
        tripped = "tripped" in self.faults
        running = not tripped
        if tripped:
            target, frequency = 0.12, 0.0
        elif "low_pressure" in self.faults:
            target, frequency = 0.15, 50.0
        else:
            target, frequency = self.SETPOINT, 28.0 + 20.0 * demand
        # First-order approach to the target pressure, with a little noise.
        self.pressure += (target - self.pressure) * min(1.0, dt / 2.0) + self.rng.uniform(-0.002, 0.002)
        if running:
            self.run_hours += dt / 3600
        self.values = {
            "outlet_pressure": max(0.0, self.pressure),
            "pressure_setpoint": self.SETPOINT,
            "frequency": frequency,
            "running": running,
            "tripped": tripped,
            "remote": True,
            "motor_current": (6.0 + 14.0 * (frequency / 50.0) ** 2) if running else 0.0,
            "run_hours": int(self.run_hours),
            "flow": round(demand * 40.0, 1) if running else 0.0,
        }


class Elevator(DeviceModel):
    """A car that serves random calls: doors open at a floor, then travels about 1.5 s a floor."""

    type = "elevator"
    FAULTS: ClassVar[dict[str, str]] = {
        "entrapment": "the car stops between floors with the doors shut; a passenger presses the alarm button",
    }
    FLOORS = 18
    SECONDS_PER_FLOOR = 1.5
    DWELL = 4.0

    def __init__(self, device_id: str, rng: random.Random) -> None:
        super().__init__(device_id, rng)
        self.position = float(rng.randint(1, self.FLOORS))
        self.target = self.position
        self.dwell = self.DWELL

    def step(self, dt: float, t: float) -> None:
        trapped = "entrapment" in self.faults
        if trapped:
            if abs(self.position - round(self.position)) < 0.1:  # stop well outside the door zone
                self.position = min(self.position + 0.4, self.FLOORS - 0.4)
            moving, door_open, direction = False, False, "idle"
        elif self.position != self.target:
            step = dt / self.SECONDS_PER_FLOOR
            direction = "up" if self.target > self.position else "down"
            if abs(self.target - self.position) <= step:
                self.position, self.dwell = self.target, self.DWELL
            else:
                self.position += step if direction == "up" else -step
            moving, door_open = self.position != self.target, self.position == self.target
        else:
            moving, door_open, direction = False, True, "idle"
            self.dwell -= dt
            if self.dwell <= 0:
                self.target = float(self.rng.randint(1, self.FLOORS))
                door_open = False
        in_zone = abs(self.position - round(self.position)) < 0.05
        self.values = {
            "floor": round(self.position),
            "direction": direction,
            "moving": moving,
            "in_door_zone": in_zone,
            "door_open": door_open and in_zone,
            "alarm_button": trapped,
            "fault_code": 0,
            "mode": "normal",
        }


MODELS: dict[str, type[DeviceModel]] = {m.type: m for m in (BoosterPump, Elevator)}
