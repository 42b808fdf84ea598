"""Scenarios: a timeline of fault injections and clears, played against the simulated plant.

A scenario file:

    name: basement-flooding
    title: {zh: ..., en: ...}
    speed: 10            # timeline and the named devices' model time run 10x faster
    clock: "02:30"       # optional: the time of day its devices see while it plays (night, say)
    steps:
      - {at: 0s, inject: {device: sump-b0-1, fault: inflow_surge}}
      - {at: 5m, inject: {device: sump-b0-1, fault: pump_failure, params: {pump: 2}}}
      - {at: 30m, clear: {device: sump-b0-1}}

`at` is scenario time; at speed 10 a step at 30m happens 3 real minutes after the start.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from facility.duration import Duration
from facility.yamlfile import ConfigError, Problem, load_yaml, parse_yaml, validate
from simulators.host import SimulatorHost, UnknownDevice
from simulators.models import FaultError

log = logging.getLogger(__name__)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Inject(_Strict):
    device: str
    fault: str
    params: dict[str, Any] = Field(default_factory=dict)


class Clear(_Strict):
    device: str
    fault: str | None = None


class Step(_Strict):
    at: Duration
    inject: Inject | None = None
    clear: Clear | None = None

    @model_validator(mode="after")
    def _one_action(self) -> Step:
        if (self.inject is None) == (self.clear is None):
            raise ValueError("a step either injects or clears")
        return self


SCENARIO_NAME = r"^[a-z0-9][a-z0-9_-]*$"  # an id: also what a request may ask for by name


class Scenario(_Strict):
    name: str = Field(pattern=SCENARIO_NAME)
    title: dict[str, str] = Field(default_factory=dict)
    speed: float = Field(default=1.0, gt=0, le=1_000_000)
    clock: str | None = Field(default=None, pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    steps: list[Step] = Field(min_length=1)

    @property
    def devices(self) -> set[str]:
        """Every device a step injects into or clears: what playing the scenario touches."""
        return {(s.inject or s.clear).device for s in self.steps}  # type: ignore[union-attr]

    def within(self, visible: set[str] | None) -> bool:
        """Whether it touches only devices of `visible` (None: every device)."""
        return visible is None or self.devices <= visible


def load_scenario(path: Path) -> Scenario:
    return validate(Scenario, load_yaml(path))


def parse_scenario(text: str, source: str = "<request>") -> Scenario:
    return validate(Scenario, parse_yaml(text, source))


def check_against(scenario: Scenario, host: SimulatorHost, source: str = "", visible: set[str] | None = None) -> None:
    """Every device and fault a scenario names must exist before it starts. A device outside
    `visible` (None: every device) is reported exactly as one that does not exist."""
    problems = []
    for i, step in enumerate(scenario.steps):
        action = step.inject or step.clear
        assert action is not None
        kind = "inject" if step.inject else "clear"
        sim = host.devices.get(action.device) if visible is None or action.device in visible else None
        if sim is None:
            problems.append(
                Problem(source, None, f"steps[{i}].{kind}.device", f"no simulated device {action.device!r}")
            )
            continue
        model, fault = sim.model, action.fault
        if fault is not None and fault not in model.catalogue():
            problems.append(Problem(source, None, f"steps[{i}].{kind}.fault", f"{model.type} has no fault {fault!r}"))
    if problems:
        raise ConfigError(problems)


def load_library(folders: list[Path]) -> dict[str, Scenario]:
    out: dict[str, Scenario] = {}
    problems: list[Problem] = []
    for folder in folders:
        for path in sorted(folder.glob("*.yaml")):
            try:
                scenario = load_scenario(path)
            except ConfigError as exc:
                problems.extend(exc.problems)
                continue
            out[scenario.name] = scenario
    if problems:
        raise ConfigError(problems)
    return out


@dataclass
class Run:
    """One playing (or played) scenario."""

    id: int
    scenario: Scenario
    started: float = field(default_factory=time.time)
    state: Literal["running", "finished", "stopped", "failed"] = "running"
    done: list[str] = field(default_factory=list)  # what each applied step did, in order
    error: str = ""
    task: asyncio.Task[None] | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.scenario.name,
            "title": self.scenario.title,
            "speed": self.scenario.speed,
            "state": self.state,
            "steps": len(self.scenario.steps),
            "done": self.done,
            "error": self.error,
            "started": self.started,
        }


class ScenarioPlayer:
    def __init__(self, host: SimulatorHost, library: dict[str, Scenario]) -> None:
        self.host = host
        self.library = library
        self.runs: dict[int, Run] = {}
        self._ids = itertools.count(1)

    def start(self, scenario: Scenario, visible: set[str] | None = None) -> Run:
        """Check the scenario (its devices among `visible`, None: any), set its devices' clock and
        speed for it at once, and play it. The clock is its devices' only: a scenario may touch
        just the buildings its user may see, and the rest of the plant keeps the time of day."""
        check_against(scenario, self.host, visible=visible)
        run = Run(next(self._ids), scenario)
        offsets = self.host.clock_offsets
        saved_offset = {d: offsets[d] for d in scenario.devices if d in offsets}
        if scenario.clock:
            hours, minutes = map(int, scenario.clock.split(":"))
            self.host.set_time_of_day(hours * 3600 + minutes * 60, scenario.devices)
        for device in scenario.devices:
            self.host.model(device).speed = scenario.speed
        run.task = asyncio.create_task(self._play(run, saved_offset), name=f"scenario {scenario.name}")
        self.runs[run.id] = run
        return run

    async def stop(self, run_id: int) -> Run:
        run = self.runs[run_id]
        if run.task is not None and not run.task.done():
            run.task.cancel()
            await asyncio.gather(run.task, return_exceptions=True)
            run.state = "stopped"
        return run

    async def stop_all(self) -> None:
        for run_id in list(self.runs):
            await self.stop(run_id)

    async def _play(self, run: Run, saved_offset: dict[str, float]) -> None:
        scenario, host = run.scenario, self.host
        start = time.monotonic()
        try:
            for step in sorted(scenario.steps, key=lambda s: s.at):
                await asyncio.sleep(max(0.0, start + step.at / scenario.speed - time.monotonic()))
                if step.inject:
                    await host.inject(step.inject.device, step.inject.fault, step.inject.params)
                    run.done.append(f"{step.at:g}s inject {step.inject.fault} on {step.inject.device}")
                else:
                    assert step.clear is not None
                    await host.clear(step.clear.device, step.clear.fault)
                    run.done.append(f"{step.at:g}s clear {step.clear.fault or 'all'} on {step.clear.device}")
            run.state = "finished"
        except (FaultError, UnknownDevice) as exc:
            run.state, run.error = "failed", str(exc)
            log.warning("scenario %s failed: %s", scenario.name, exc)
        finally:
            for device in scenario.devices:
                host.model(device).speed = 1.0
                host.clock_offsets.pop(device, None)
            host.clock_offsets.update(saved_offset)
