"""Passenger elevators: a car serving random calls, with doors, counters and its faults."""

from __future__ import annotations

import random
from typing import ClassVar

from facility.model import Value
from simulators.models.base import DeviceModel

DOOR_FAULT_CODE = 31  # controller code for "door did not close" on the simulated controller


class Elevator(DeviceModel):
    """Doors open at a floor for a while, then the car travels about 1.5 s a floor to the next call."""

    type = "elevator"
    FAULTS: ClassVar[dict[str, str]] = {
        "entrapment": "the car stops between floors with the doors shut; a passenger presses the alarm button",
        "door_fault": "the doors will not close: they reopen again and again and the controller shows code 31",
        "out_of_service": "the car is taken out of service: it parks at its floor, doors shut, mode out_of_service",
    }
    FLAP: ClassVar[tuple[str, Value, Value]] = ("alarm_button", False, True)
    FLOORS = 18
    SECONDS_PER_FLOOR = 1.5
    DWELL = 4.0
    DOOR_RETRY_S = 1.0

    def __init__(self, device_id: str, rng: random.Random) -> None:
        super().__init__(device_id, rng)
        self.position = float(rng.randint(1, self.FLOORS))
        self.target = self.position
        self.dwell = self.DWELL
        self.trips = rng.randint(100_000, 900_000)
        self.door_cycles = self.trips * 2
        self.door_was_open = True
        self.retry = 0.0

    def update(self, dt: float, t: float) -> None:
        faults = self.faults
        mode, fault_code, direction, moving = "normal", 0, "idle", False
        if "entrapment" in faults:
            if abs(self.position - round(self.position)) < 0.1:  # stop well outside the door zone
                self.position = min(self.position + 0.4, self.FLOORS - 0.4)
            door_open = False
        elif "out_of_service" in faults and self.position == self.target:
            mode, door_open = "out_of_service", False
        elif "door_fault" in faults and self.position == self.target:
            fault_code = DOOR_FAULT_CODE
            self.retry -= dt
            if self.retry <= 0:  # the door tries to close, hits its safety edge, reopens
                self.retry = self.DOOR_RETRY_S
                door_open = not self.door_was_open
            else:
                door_open = self.door_was_open
        elif self.position != self.target:
            step = dt / self.SECONDS_PER_FLOOR
            direction = "up" if self.target > self.position else "down"
            if abs(self.target - self.position) <= step:
                self.position, self.dwell = self.target, self.DWELL
            else:
                self.position += step if direction == "up" else -step
            moving = self.position != self.target
            door_open = not moving
        else:
            door_open = True
            self.dwell -= dt
            if self.dwell <= 0:
                self.target = float(self.rng.randint(1, self.FLOORS))
                if self.target != self.position:
                    self.trips += 1
                door_open = False
        in_zone = abs(self.position - round(self.position)) < 0.05
        door_open = door_open and in_zone
        if door_open and not self.door_was_open:
            self.door_cycles += 1
        self.door_was_open = door_open
        self.values = {
            "floor": round(self.position),
            "direction": direction,
            "moving": moving,
            "in_door_zone": in_zone,
            "door_open": door_open,
            "door_cycles": self.door_cycles,
            "alarm_button": "entrapment" in faults,
            "fault_code": fault_code,
            "mode": mode,
            "trips": self.trips,
        }
