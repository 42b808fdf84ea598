"""Simulated device models, one module per plant system, registered by device type."""

from __future__ import annotations

from simulators.models.base import COMMON_FAULTS, DeviceModel, FaultError
from simulators.models.doors import AccessDoor
from simulators.models.elevator import Elevator
from simulators.models.fire import FirePanel
from simulators.models.lighting import LightingPanel
from simulators.models.power import PowerMeter
from simulators.models.water import BoosterPump, SumpPit, WaterTank

MODELS: dict[str, type[DeviceModel]] = {
    m.type: m for m in (BoosterPump, WaterTank, SumpPit, PowerMeter, Elevator, FirePanel, LightingPanel, AccessDoor)
}

__all__ = ["COMMON_FAULTS", "MODELS", "DeviceModel", "FaultError"]
