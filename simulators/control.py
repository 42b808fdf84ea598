"""The simulators' HTTP control API: list devices, inject and clear faults.

Served under /sim/ by `facility demo`, or alone by `facility sim run`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, HTTPException, params
from pydantic import BaseModel, ConfigDict

from simulators.host import SimulatorHost, UnknownDevice
from simulators.models import UnknownFault


class FaultRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    device: str
    fault: str


def control_router(host: SimulatorHost, dependencies: Sequence[params.Depends] = ()) -> APIRouter:
    router = APIRouter(dependencies=list(dependencies), tags=["simulators"])

    def describe(device_id: str) -> dict[str, Any]:
        sim = host.devices[device_id]
        binding = sim.device.modbus or sim.device.mqtt
        return {
            "id": device_id,
            "type": sim.model.type,
            "faults": sorted(sim.model.faults),
            "available_faults": sim.model.FAULTS,
            "binding": binding.model_dump() if binding else None,
            "values": sim.model.values,
        }

    @router.get("/devices")
    async def devices() -> list[dict[str, Any]]:
        return [describe(d) for d in host.devices]

    @router.post("/faults", status_code=201)
    async def inject(request: FaultRequest) -> dict[str, Any]:
        try:
            host.inject(request.device, request.fault)
        except UnknownDevice:
            raise HTTPException(404, f"no simulated device {request.device!r}") from None
        except UnknownFault as exc:
            raise HTTPException(422, str(exc)) from None
        return describe(request.device)

    @router.delete("/faults/{device}")
    async def clear_all(device: str) -> dict[str, Any]:
        return _clear(device, None)

    @router.delete("/faults/{device}/{fault}")
    async def clear_one(device: str, fault: str) -> dict[str, Any]:
        return _clear(device, fault)

    def _clear(device: str, fault: str | None) -> dict[str, Any]:
        try:
            host.clear(device, fault)
        except UnknownDevice:
            raise HTTPException(404, f"no simulated device {device!r}") from None
        except UnknownFault as exc:
            raise HTTPException(422, str(exc)) from None
        return describe(device)

    return router
