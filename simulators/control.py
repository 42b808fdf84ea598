"""The simulators' HTTP control API: devices, faults and scenarios.

Served under /sim/ by `facility demo`, or alone by `facility sim run`. Bad input gets a 4xx that
names what is wrong, and changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, HTTPException, params
from pydantic import BaseModel, ConfigDict, Field, model_validator

from facility.yamlfile import ConfigError
from simulators.host import SimulatorHost, UnknownDevice
from simulators.models import FaultError
from simulators.scenarios import ScenarioPlayer, parse_scenario


class FaultRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    device: str
    fault: str
    params: dict[str, Any] = Field(default_factory=dict)


class ScenarioRequest(BaseModel):
    """Play a scenario of the library by `name`, or one given whole as YAML in `definition`."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    definition: str | None = None
    speed: float | None = Field(default=None, gt=0, le=1_000_000)  # overrides the scenario's own

    @model_validator(mode="after")
    def _one_source(self) -> ScenarioRequest:
        if (self.name is None) == (self.definition is None):
            raise ValueError("give either `name` (a library scenario) or `definition` (YAML)")
        return self


def control_router(
    host: SimulatorHost, player: ScenarioPlayer, dependencies: Sequence[params.Depends] = ()
) -> APIRouter:
    router = APIRouter(dependencies=list(dependencies), tags=["simulators"])

    def describe(device_id: str) -> dict[str, Any]:
        sim = host.devices[device_id]
        binding = sim.device.modbus or sim.device.mqtt
        return {
            "id": device_id,
            "type": sim.model.type,
            "faults": {name: params for name, params in sim.model.faults.items()},
            "available_faults": sim.model.catalogue(),
            "binding": binding.model_dump() if binding else None,
            "values": sim.model.values,
        }

    @router.get("/devices")
    async def devices() -> list[dict[str, Any]]:
        """Every simulated device with its binding, current values and fault catalogue."""
        return [describe(d) for d in host.devices]

    @router.post("/faults", status_code=201)
    async def inject(request: FaultRequest) -> dict[str, Any]:
        """Give a device a fault; 404 for an unknown device, 422 for an unknown fault or parameter."""
        try:
            await host.inject(request.device, request.fault, request.params)
        except UnknownDevice:
            raise HTTPException(404, f"no simulated device {request.device!r}") from None
        except FaultError as exc:
            raise HTTPException(422, str(exc)) from None
        return describe(request.device)

    @router.delete("/faults/{device}")
    async def clear_all(device: str) -> dict[str, Any]:
        return await _clear(device, None)

    @router.delete("/faults/{device}/{fault}")
    async def clear_one(device: str, fault: str) -> dict[str, Any]:
        return await _clear(device, fault)

    async def _clear(device: str, fault: str | None) -> dict[str, Any]:
        try:
            await host.clear(device, fault)
        except UnknownDevice:
            raise HTTPException(404, f"no simulated device {device!r}") from None
        except FaultError as exc:
            raise HTTPException(422, str(exc)) from None
        return describe(device)

    @router.get("/scenarios")
    async def scenarios() -> dict[str, Any]:
        """The scenario library and every run so far."""
        return {
            "library": [
                {"name": s.name, "title": s.title, "speed": s.speed, "steps": len(s.steps)}
                for s in player.library.values()
            ],
            "runs": [r.describe() for r in player.runs.values()],
        }

    @router.post("/scenarios", status_code=201)
    async def play(request: ScenarioRequest) -> dict[str, Any]:
        if request.name is not None:
            scenario = player.library.get(request.name)
            if scenario is None:
                known = ", ".join(sorted(player.library)) or "none"
                raise HTTPException(404, f"no scenario {request.name!r} (known: {known})")
        else:
            try:
                scenario = parse_scenario(request.definition or "", "definition")
            except ConfigError as exc:
                raise HTTPException(422, str(exc)) from None
        if request.speed is not None:
            scenario = scenario.model_copy(update={"speed": request.speed})
        try:
            run = player.start(scenario)
        except ConfigError as exc:
            raise HTTPException(422, str(exc)) from None
        return run.describe()

    @router.get("/scenarios/{run_id}")
    async def run_status(run_id: int) -> dict[str, Any]:
        if run_id not in player.runs:
            raise HTTPException(404, f"no scenario run {run_id}")
        return player.runs[run_id].describe()

    @router.delete("/scenarios/{run_id}")
    async def stop(run_id: int) -> dict[str, Any]:
        """Stop a run; the faults it injected stay until cleared."""
        if run_id not in player.runs:
            raise HTTPException(404, f"no scenario run {run_id}")
        return (await player.stop(run_id)).describe()

    return router
