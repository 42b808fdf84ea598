"""The simulators' HTTP control API: devices, faults and scenarios.

Served under /sim/ by `facility demo`, or alone by `facility sim run`. Bad input gets a 4xx that
names what is wrong, and changes nothing.

Like every route of the API, it is scoped: the `scope` dependency says which devices the asking
user may see (None: all). To a user limited to some buildings, another building's device, the
library scenarios that touch one and the runs that play one do not exist: they answer exactly as
unknown ones do, so that the answers tell nothing of the other buildings.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, params
from pydantic import BaseModel, ConfigDict, Field, model_validator

from facility.yamlfile import ConfigError
from simulators.host import SimulatorHost
from simulators.models import FaultError
from simulators.scenarios import SCENARIO_NAME, Run, Scenario, ScenarioPlayer, parse_scenario

# A FastAPI dependency giving the ids of the devices the asking user may see; None: every device.
Scope = Callable[..., Awaitable[set[str] | None]]


async def everything() -> set[str] | None:
    """The scope of `facility sim run`, whose one (admin) token sees the whole plant."""
    return None


def invalid(field: tuple[str, str], messages: list[str]) -> HTTPException:
    """A 422 naming the field, in the shape of FastAPI's own validation errors: the one the API's
    other routes answer and its document gives for 422, so that clients handle one kind."""
    return HTTPException(422, [{"loc": list(field), "msg": m, "type": "value_error"} for m in messages])


class FaultRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    device: str
    fault: str
    params: dict[str, Any] = Field(default_factory=dict)


class ScenarioRequest(BaseModel):
    """Play a scenario of the library by `name`, or one given whole as YAML in `definition`."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, pattern=SCENARIO_NAME)  # `.`, `..` and paths are 422 here
    definition: str | None = None
    speed: float | None = Field(default=None, gt=0, le=1_000_000)  # overrides the scenario's own

    @model_validator(mode="after")
    def _one_source(self) -> ScenarioRequest:
        if (self.name is None) == (self.definition is None):
            raise ValueError("give either `name` (a library scenario) or `definition` (YAML)")
        return self


def control_router(
    host: SimulatorHost,
    player: ScenarioPlayer,
    scope: Scope,
    dependencies: Sequence[params.Depends] = (),
) -> APIRouter:
    """The control API of `host` and `player`; each route shows and acts on the devices `scope`
    gives the asking user, and on the scenarios and runs that touch only those. `scope` has no
    default, so that no router is built without deciding who sees what (`everything`: all)."""
    router = APIRouter(dependencies=list(dependencies), tags=["simulators"])
    # A default rather than an Annotated alias: FastAPI looks the (string) annotations up in the
    # module, where an alias made here is not.
    visible_to_user = Depends(scope)

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

    def device_for(device_id: str, visible: set[str] | None) -> str:
        """The device id, or 404 when it is unknown or not the user's: the two look the same."""
        if device_id not in host.devices or (visible is not None and device_id not in visible):
            raise HTTPException(404, f"no simulated device {device_id!r}")
        return device_id

    def run_for(run_id: int, visible: set[str] | None) -> Run:
        run = player.runs.get(run_id)
        if run is None or not run.scenario.within(visible):
            raise HTTPException(404, f"no scenario run {run_id}")
        return run

    def library(visible: set[str] | None) -> dict[str, Scenario]:
        return {name: s for name, s in player.library.items() if s.within(visible)}

    @router.get("/devices")
    async def devices(visible: set[str] | None = visible_to_user) -> list[dict[str, Any]]:
        """Every simulated device the user may see, with its binding, current values and fault catalogue."""
        return [describe(d) for d in host.devices if visible is None or d in visible]

    @router.post("/faults", status_code=201)
    async def inject(request: FaultRequest, visible: set[str] | None = visible_to_user) -> dict[str, Any]:
        """Give a device a fault; 404 for an unknown device, 422 for an unknown fault or parameter."""
        device = device_for(request.device, visible)
        try:
            await host.inject(device, request.fault, request.params)
        except FaultError as exc:
            known = request.fault in host.model(device).catalogue()
            raise invalid(("body", "params" if known else "fault"), [str(exc)]) from None
        return describe(device)

    @router.delete("/faults/{device}")
    async def clear_all(device: str, visible: set[str] | None = visible_to_user) -> dict[str, Any]:
        return await _clear(device_for(device, visible), None)

    @router.delete("/faults/{device}/{fault}")
    async def clear_one(device: str, fault: str, visible: set[str] | None = visible_to_user) -> dict[str, Any]:
        return await _clear(device_for(device, visible), fault)

    async def _clear(device: str, fault: str | None) -> dict[str, Any]:
        try:
            await host.clear(device, fault)
        except FaultError as exc:
            raise invalid(("path", "fault"), [str(exc)]) from None
        return describe(device)

    @router.get("/scenarios")
    async def scenarios(visible: set[str] | None = visible_to_user) -> dict[str, Any]:
        """The scenario library and every run so far, of those that touch only the user's devices."""
        return {
            "library": [
                {"name": s.name, "title": s.title, "speed": s.speed, "steps": len(s.steps)}
                for s in library(visible).values()
            ],
            "runs": [r.describe() for r in player.runs.values() if r.scenario.within(visible)],
        }

    @router.post("/scenarios", status_code=201)
    async def play(request: ScenarioRequest, visible: set[str] | None = visible_to_user) -> dict[str, Any]:
        """Play a scenario; one that touches a device the user may not see is refused as if that
        device did not exist (a library scenario: 404; a definition: 422 naming the step)."""
        if request.name is not None:
            known = library(visible)
            scenario = known.get(request.name)
            if scenario is None:
                names = ", ".join(sorted(known)) or "none"
                raise HTTPException(404, f"no scenario {request.name!r} (known: {names})")
        else:
            try:
                # In a worker thread: YAML is parsed in Python, and a large definition on the
                # event loop would hold up the gateway and the rules that share it.
                scenario = await asyncio.to_thread(parse_scenario, request.definition or "", "definition")
            except ConfigError as exc:
                raise invalid(("body", "definition"), [str(p) for p in exc.problems]) from None
        if request.speed is not None:
            scenario = scenario.model_copy(update={"speed": request.speed})
        try:
            run = player.start(scenario, visible)
        except ConfigError as exc:  # a device or fault it names does not exist (or is not theirs)
            field = "name" if request.name is not None else "definition"
            raise invalid(("body", field), [str(p) for p in exc.problems]) from None
        return run.describe()

    @router.get("/scenarios/{run_id}")
    async def run_status(run_id: int, visible: set[str] | None = visible_to_user) -> dict[str, Any]:
        return run_for(run_id, visible).describe()

    @router.delete("/scenarios/{run_id}")
    async def stop(run_id: int, visible: set[str] | None = visible_to_user) -> dict[str, Any]:
        """Stop a run; the faults it injected stay until cleared."""
        return (await player.stop(run_for(run_id, visible).id)).describe()

    return router
