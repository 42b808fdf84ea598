"""The simulators' HTTP control API: devices, faults and scenarios.

Served under /sim/ by `facility demo`, or alone by `facility sim run`. Bad input gets a 4xx that
names what is wrong, and changes nothing: the routes raise the kernel's NotFound and Invalid
(facility.errors), which whoever serves the router answers with api.errors' handlers, as every
other route of the API.

Like every route of the API, it is scoped: the simulation's `scope` says which devices the asking
user may see (None: all). To a user limited to some buildings, another building's device, the
library scenarios that touch one and the runs that play one do not exist: they answer exactly as
unknown ones do, so that the answers tell nothing of the other buildings.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from facility.errors import Invalid, NotFound
from facility.yamlfile import ConfigError
from simulators.host import SimulatorHost
from simulators.models import FaultError
from simulators.scenarios import SCENARIO_NAME, Run, Scenario, ScenarioPlayer, parse_scenario

# The ids of the devices the user asking `request` may see; None: every device.
Scope = Callable[[Request], Awaitable[set[str] | None]]


async def everything(_: Request) -> set[str] | None:
    """The scope of `facility sim run`, whose one (admin) token sees the whole plant."""
    return None


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


@dataclass(frozen=True)
class Simulation:
    """What the control routes act on, and whose devices they show: whoever serves the router
    keeps one on `app.state.simulation`. `scope` has no default, so that no app serves the routes
    without deciding who sees what (`everything`: all)."""

    host: SimulatorHost
    player: ScenarioPlayer
    scope: Scope

    def describe(self, device_id: str) -> dict[str, Any]:
        sim = self.host.devices[device_id]
        binding = sim.device.modbus or sim.device.mqtt
        return {
            "id": device_id,
            "type": sim.model.type,
            "faults": {name: params for name, params in sim.model.faults.items()},
            "available_faults": sim.model.catalogue(),
            "binding": binding.model_dump() if binding else None,
            "values": sim.model.values,
        }

    def device_for(self, device_id: str, visible: set[str] | None) -> str:
        """The device id, or 404 when it is unknown or not the user's: the two look the same."""
        if device_id not in self.host.devices or (visible is not None and device_id not in visible):
            raise NotFound(f"no simulated device {device_id!r}")
        return device_id

    def run_for(self, run_id: int, visible: set[str] | None) -> Run:
        run = self.player.runs.get(run_id)
        if run is None or not run.scenario.within(visible):
            raise NotFound(f"no scenario run {run_id}")
        return run

    def library(self, visible: set[str] | None) -> dict[str, Scenario]:
        return {name: s for name, s in self.player.library.items() if s.within(visible)}

    async def clear(self, device: str, fault: str | None) -> dict[str, Any]:
        try:
            await self.host.clear(device, fault)
        except FaultError as exc:
            raise Invalid(str(exc), field="fault", where="path") from None
        return self.describe(device)


def simulation(request: Request) -> Simulation:
    """The simulation of the app the request came to."""
    found: Simulation = request.app.state.simulation
    return found


async def visible_devices(request: Request, sim: Annotated[Simulation, Depends(simulation)]) -> set[str] | None:
    """The ids of the devices the asking user may see (None: all), as the simulation's scope says."""
    return await sim.scope(request)


Sim = Annotated[Simulation, Depends(simulation)]
Visible = Annotated[set[str] | None, Depends(visible_devices)]
router = APIRouter(tags=["simulators"])


@router.get("/devices")
async def devices(sim: Sim, visible: Visible) -> list[dict[str, Any]]:
    """Every simulated device the user may see, with its binding, current values and fault catalogue."""
    return [sim.describe(d) for d in sim.host.devices if visible is None or d in visible]


@router.post("/faults", status_code=201)
async def inject(sim: Sim, request: FaultRequest, visible: Visible) -> dict[str, Any]:
    """Give a device a fault; 404 for an unknown device, 422 for an unknown fault or parameter."""
    device = sim.device_for(request.device, visible)
    try:
        await sim.host.inject(device, request.fault, request.params)
    except FaultError as exc:
        known = request.fault in sim.host.model(device).catalogue()
        raise Invalid(str(exc), field="params" if known else "fault") from None
    return sim.describe(device)


@router.delete("/faults/{device}")
async def clear_all(sim: Sim, device: str, visible: Visible) -> dict[str, Any]:
    return await sim.clear(sim.device_for(device, visible), None)


@router.delete("/faults/{device}/{fault}")
async def clear_one(sim: Sim, device: str, fault: str, visible: Visible) -> dict[str, Any]:
    return await sim.clear(sim.device_for(device, visible), fault)


@router.get("/scenarios")
async def scenarios(sim: Sim, visible: Visible) -> dict[str, Any]:
    """The scenario library and every run so far, of those that touch only the user's devices."""
    return {
        "library": [
            {"name": s.name, "title": s.title, "speed": s.speed, "steps": len(s.steps)}
            for s in sim.library(visible).values()
        ],
        "runs": [r.describe() for r in sim.player.runs.values() if r.scenario.within(visible)],
    }


async def scenario_of(sim: Simulation, request: ScenarioRequest, visible: set[str] | None) -> Scenario:
    """The scenario a request asks to play: one of the user's library, or its definition parsed."""
    if request.name is not None:
        known = sim.library(visible)
        scenario = known.get(request.name)
        if scenario is None:
            names = ", ".join(sorted(known)) or "none"
            raise NotFound(f"no scenario {request.name!r} (known: {names})")
        return scenario
    try:
        # In a worker thread: YAML is parsed in Python, and a large definition on the
        # event loop would hold up the gateway and the rules that share it.
        return await asyncio.to_thread(parse_scenario, request.definition or "", "definition")
    except ConfigError as exc:
        raise Invalid.each([str(p) for p in exc.problems], field="definition") from None


@router.post("/scenarios", status_code=201)
async def play(sim: Sim, request: ScenarioRequest, visible: Visible) -> dict[str, Any]:
    """Play a scenario; one that touches a device the user may not see is refused as if that
    device did not exist (a library scenario: 404; a definition: 422 naming the step)."""
    scenario = await scenario_of(sim, request, visible)
    if request.speed is not None:
        scenario = scenario.model_copy(update={"speed": request.speed})
    try:
        run = sim.player.start(scenario, visible)
    except ConfigError as exc:  # a device or fault it names does not exist (or is not theirs)
        field = "name" if request.name is not None else "definition"
        raise Invalid.each([str(p) for p in exc.problems], field=field) from None
    return run.describe()


@router.get("/scenarios/{run_id}")
async def run_status(sim: Sim, run_id: int, visible: Visible) -> dict[str, Any]:
    return sim.run_for(run_id, visible).describe()


@router.delete("/scenarios/{run_id}")
async def stop(sim: Sim, run_id: int, visible: Visible) -> dict[str, Any]:
    """Stop a run; the faults it injected stay until cleared."""
    return (await sim.player.stop(sim.run_for(run_id, visible).id)).describe()
