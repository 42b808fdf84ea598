"""What every simulated device has: a fault catalogue, its values, and model time.

Type-specific faults live with each model. Five faults every device can be given are carried out
by the protocol front ends (comm_loss, slow, garbage, busy) or here (flapping).
"""

from __future__ import annotations

import math
import random
from typing import Any, ClassVar

from facility.model import Value

COMMON_FAULTS: dict[str, str] = {
    "comm_loss": "stops answering: no Modbus reply; the MQTT connection drops and its last will fires",
    "slow": "answers late: Modbus replies after a delay longer than most poll timeouts; MQTT publishes rarely",
    "garbage": "answers with junk: random registers; malformed JSON or wrongly typed values",
    "flapping": "one value crosses its alarm threshold back and forth every couple of seconds",
    "busy": "busy half the time: every other Modbus request is answered with exception 06 (device busy), "
    "as a controller does while it saves its settings; an MQTT device publishes as usual",
}

FLAP_PERIOD_S = 2.0


class FaultError(ValueError):
    """A fault this device cannot be given (unknown name or bad parameters)."""


class WriteRefused(ValueError):
    """A write the device does not take: a point it cannot write (the Modbus front answers illegal
    address) or, with `bad_value`, a value outside what the device accepts (illegal value)."""

    def __init__(self, message: str, *, bad_value: bool = False) -> None:
        super().__init__(message)
        self.bad_value = bad_value


class DeviceModel:
    """One simulated device. Subclasses set `values` for every point of their profile in `update`."""

    type: ClassVar[str]
    FAULTS: ClassVar[dict[str, str]]  # type-specific fault -> what it does
    FLAP: ClassVar[tuple[str, Value, Value]]  # point, normal value, value past the threshold
    WRITABLE: ClassVar[frozenset[str]] = frozenset()  # points a master may write; most devices: none

    def __init__(self, device_id: str, rng: random.Random) -> None:
        self.device_id = device_id
        self.rng = rng
        self.faults: dict[str, dict[str, Any]] = {}  # fault -> its parameters
        self.values: dict[str, Value] = {}
        self.speed = 1.0  # model seconds per real second; scenarios compress time
        self.elapsed = 0.0  # model seconds since start
        self.real_elapsed = 0.0  # real seconds since start
        self.busy_turn = False  # with the `busy` fault: whether the next Modbus request is refused

    @classmethod
    def catalogue(cls) -> dict[str, str]:
        return {**cls.FAULTS, **COMMON_FAULTS}

    def inject(self, fault: str, params: dict[str, Any] | None = None) -> None:
        if fault not in self.catalogue():
            known = ", ".join(sorted(self.catalogue()))
            raise FaultError(f"{self.type} has no fault {fault!r} (known: {known})")
        params = dict(params or {})
        self.check_params(fault, params)
        self.faults[fault] = params

    def check_params(self, fault: str, params: dict[str, Any]) -> None:
        """Refuse parameters a fault does not take; models with parametrised faults override."""
        if params:
            raise FaultError(f"{fault} takes no parameters (got {', '.join(sorted(params))})")

    def clear(self, fault: str | None = None) -> None:
        if fault is None:
            self.faults.clear()
            return
        if fault not in self.catalogue():
            raise FaultError(f"{self.type} has no fault {fault!r}")
        self.faults.pop(fault, None)

    def write(self, point: str, value: Value) -> None:
        """Take a value a master wrote; the device's values show it at once.

        Raises WriteRefused, before changing anything, for a point outside WRITABLE; a model that
        takes writes lists its points there and carries them out in `accept`.
        """
        if point not in self.WRITABLE:
            raise WriteRefused(f"{self.type} does not take writes to {point!r}")
        self.accept(point, value)

    def accept(self, point: str, value: Value) -> None:
        """Carry out a write to one of WRITABLE; raise WriteRefused(bad_value=True) for a bad value."""
        raise WriteRefused(f"{self.type} does not take writes to {point!r}")

    def step(self, dt: float, t: float) -> None:
        """Advance by `dt` real seconds; `t` is the simulated time of day in seconds."""
        self.real_elapsed += dt
        dt *= self.speed
        self.elapsed += dt
        self.update(dt, t)
        if "flapping" in self.faults:
            point, normal, past = self.FLAP
            self.values[point] = past if int(self.real_elapsed / FLAP_PERIOD_S) % 2 else normal

    def update(self, dt: float, t: float) -> None:
        raise NotImplementedError

    def jitter(self, value: float, spread: float) -> float:
        return value + self.rng.uniform(-spread, spread)


def daylight(t: float) -> float:
    """Outdoor illuminance in lux at time of day `t` (seconds): dark at night, peaks at noon."""
    hours = t / 3600
    if hours < 6 or hours > 18:
        return 0.0
    return 60000.0 * math.sin((hours - 6) / 12 * math.pi) ** 2
