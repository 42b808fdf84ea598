"""Power distribution: the meter on an incoming supply, with its standby generator and ATS."""

from __future__ import annotations

import math
import random
from typing import Any, ClassVar

from facility.model import Value
from simulators.models.base import DeviceModel, FaultError

GENERATOR_START_S = 10.0  # model seconds from mains failure until the generator carries the load
PHASES = ("a", "b", "c")


def load_kw(t: float) -> float:
    """An estate's electrical load in kW at time of day `t`: a morning bump and a larger evening peak."""
    hours = t / 3600
    morning = math.exp(-(((hours - 7.5) / 1.5) ** 2))
    evening = math.exp(-(((hours - 19.5) / 2.5) ** 2))
    return 60.0 + 50.0 * morning + 110.0 * evening


class PowerMeter(DeviceModel):
    """Three-phase meter downstream of the ATS, so it sees the generator once the ATS transfers."""

    type = "power_meter"
    FAULTS: ClassVar[dict[str, str]] = {
        "mains_failure": "mains is lost: dead bus, then after ~10 s the generator starts and the ATS transfers",
        "phase_loss": "one phase (param phase: a, b or c, default b) loses its voltage and current",
        "over_voltage": "mains voltage rises to about 255 V on all phases",
    }
    FLAP: ClassVar[tuple[str, Value, Value]] = ("voltage_a", 230.0, 185.0)

    def __init__(self, device_id: str, rng: random.Random) -> None:
        super().__init__(device_id, rng)
        self.energy = rng.uniform(100_000, 900_000)  # kWh since the meter was fitted
        self.balance = {p: rng.uniform(0.9, 1.1) for p in PHASES}  # share of the load on each phase
        self.outage_s = 0.0  # model seconds since the mains failed

    def check_params(self, fault: str, params: dict[str, Any]) -> None:
        if fault == "phase_loss":
            if set(params) - {"phase"} or params.get("phase", "b") not in PHASES:
                raise FaultError("phase_loss takes {phase: a, b or c}")
        else:
            super().check_params(fault, params)

    def update(self, dt: float, t: float) -> None:
        mains = "mains_failure" not in self.faults
        self.outage_s = 0.0 if mains else self.outage_s + dt
        generator = not mains and self.outage_s >= GENERATOR_START_S
        ats = "mains" if mains else "generator" if generator else "off"
        nominal = 255.0 if mains and "over_voltage" in self.faults else 230.0
        lost = self.faults["phase_loss"].get("phase", "b") if mains and "phase_loss" in self.faults else None
        power_factor = self.jitter(0.92, 0.02)
        per_phase_kw = self.jitter(load_kw(t), 3.0) / 3
        volts: dict[str, float] = {}
        amps: dict[str, float] = {}
        for p in PHASES:
            live = ats != "off" and p != lost
            volts[p] = self.jitter(nominal, 2.0) if live else 0.0
            amps[p] = per_phase_kw * self.balance[p] * 1000 / (volts[p] * power_factor) if live else 0.0
        power = sum(volts[p] * amps[p] * power_factor for p in PHASES) / 1000
        self.energy += power * dt / 3600
        if power == 0.0:
            power_factor = 1.0  # what meters show with no load
        self.values = {
            **{f"voltage_{p}": volts[p] for p in PHASES},
            **{f"current_{p}": amps[p] for p in PHASES},
            "active_power": power,
            "energy": int(self.energy),
            "frequency": 0.0 if ats == "off" else self.jitter(50.0, 0.3 if generator else 0.03),
            "power_factor": power_factor,
            "mains_present": mains,
            "generator_running": generator,
            "ats_position": ats,
        }
