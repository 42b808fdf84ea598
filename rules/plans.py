"""Emergency plans: checklists with time limits that an emergency alarm opens on the desk.

Plan files hold `plans:`, a list of plans, each a list of steps with a limit counted from the
moment the plan opens. The library (rules/plans/) loads first, then the site's own files; a later
plan with the same id replaces an earlier one, so a site adapts a library plan by redefining it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from functools import partial
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from facility.bus import Bus
from facility.duration import Duration
from facility.model import now_ns
from facility.records import PlanRecord
from facility.site import ID_PATTERN, Site
from facility.store.plans import NewStep, PlanRefused, PlanStore, StepAttachment
from facility.vocabulary import EventKind
from facility.yamlfile import ConfigError, ConfigWarning, Problem, load_yaml, validate
from rules.attachments import AttachmentFolder
from rules.texts import FileText, render

log = logging.getLogger(__name__)

LIBRARY_DIR = Path(__file__).parent / "library" / "plans"
OVERDUE_CHECK_S = 5.0  # how often `watch` looks for steps past their limit
STEP_FILES = "plan-steps"  # the folder of the step files, inside the folder of the tasks' files

__all__ = ["Plan", "PlanRefused", "PlanService", "Step", "load_plans", "plan_paths", "step_files"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Step(_Strict):
    id: str = Field(pattern=ID_PATTERN)
    text: FileText
    within: Duration  # limit from the plan's opening

    @field_validator("within")
    @classmethod
    def _positive(cls, within: float) -> float:
        if within <= 0:
            raise ValueError("a step needs time to be done: give a limit above zero, e.g. 5m")
        return within


class Plan(_Strict):
    id: str = Field(pattern=ID_PATTERN)
    title: FileText
    steps: list[Step] = Field(min_length=1)

    _warnings: list[ConfigWarning] = PrivateAttr(default_factory=list)  # filled by the loader

    @property
    def warnings(self) -> list[ConfigWarning]:
        """What in the plan loads but is likely a slip (a text in one language), with file and line."""
        return self._warnings


def step_files(site: Site, attachments_dir: Path) -> AttachmentFolder:
    """The folder of the photos and files of plan steps: inside the tasks' `attachments_dir`, so
    that the data folder keeps every file duty staff added in one place (a backup takes one
    folder), and as the tasks' files are, held to the site's `api.max_attachment_kb`."""
    return AttachmentFolder(attachments_dir / STEP_FILES, site.api.max_attachment_kb, "a plan step")


class PlanFile(_Strict):
    plans: list[Plan]


def plan_paths(site: Site) -> list[Path]:
    """Plan files in the order they load: the library, then the site's own files and folders."""
    paths: list[Path] = []
    for source in [LIBRARY_DIR] + [site.path(p) for p in site.plans]:
        paths.extend(sorted(source.glob("*.yaml")) if source.is_dir() else [source])
    return paths


def load_plans(site: Site, paths: list[Path] | None = None) -> dict[str, Plan]:
    """Every plan by id; all problems of all files are reported together, each with file, line and field."""
    problems: list[Problem] = []
    plans: dict[str, Plan] = {}
    for path in plan_paths(site) if paths is None else paths:
        try:
            plans.update((plan.id, plan) for plan in _load_file(path))
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return plans


def _load_file(path: Path) -> list[Plan]:
    doc = load_yaml(path)
    parsed = validate(PlanFile, doc)
    problems: list[Problem] = []
    seen: set[str] = set()
    for i, plan in enumerate(parsed.plans):
        if plan.id in seen:
            problems.append(doc.problem(("plans", i, "id"), f"plan id {plan.id!r} appears twice in this file"))
        seen.add(plan.id)
        steps: set[str] = set()
        for k, step in enumerate(plan.steps):
            if step.id in steps:
                problems.append(doc.problem(("plans", i, "steps", k, "id"), f"step id {step.id!r} appears twice"))
            steps.add(step.id)
        plan._warnings = doc.one_language(("plans", i))
    if problems:
        raise ConfigError(problems)
    return parsed.plans


class PlanService:
    """Opens, ticks and closes plan instances, and announces every change on the bus as kind `plan`."""

    def __init__(
        self,
        store: PlanStore,
        bus: Bus,
        plans: dict[str, Plan],
        device_names: Mapping[str, str] | None = None,
        files: AttachmentFolder | None = None,
    ) -> None:
        """`device_names` (device id -> the site file's name) fill a title's `{device_name}`: two
        lifts trapping passengers at once are two plans on the desk, each naming its lift.
        `files`: where the photos and files of steps are kept (see `step_files`); without it,
        uploads are refused."""
        self._store = store
        self._bus = bus
        self._plans = plans
        self._device_names = dict(device_names or {})
        self.files = files or AttachmentFolder(None, 0, "a plan step")

    async def open(self, plan_id: str, alarm_id: int, device_id: str, ts: int) -> PlanRecord:
        """The alarm's instance of the plan: a new one, or the one it already has."""
        plan = self._plans.get(plan_id)
        if plan is None:
            raise PlanRefused(f"no plan {plan_id!r} (known: {', '.join(sorted(self._plans))})")
        steps = [NewStep(s.id, s.text.zh, s.text.en, int(s.within * 1e9)) for s in plan.steps]
        named = {"device": device_id, "device_name": self._device_names.get(device_id) or device_id}
        title = (render(plan.title.zh, named), render(plan.title.en, named))
        instance, created = await self._store.open(plan.id, title, alarm_id, device_id, ts, steps)
        if created:
            self._announce(instance)
        return instance

    async def tick(self, instance_id: int, step_id: str, user: str, source: str, note: str = "") -> PlanRecord:
        """Record that `user` (at client address `source`) did a step. NotFound for an unknown
        instance; PlanRefused for an unknown step, a step done before or a closed instance."""
        instance = await self._store.tick(instance_id, step_id, user, source, note, now_ns())
        self._announce(instance)
        return instance

    async def close(self, instance_id: int, user: str, source: str) -> PlanRecord:
        """Close an instance before every step is done (the emergency is over or was a false alarm)."""
        instance = await self._store.close(instance_id, user, source, now_ns())
        self._announce(instance)
        return instance

    async def attach(
        self, instance_id: int, step_id: str, name: str, content_type: str, data: bytes, by: str
    ) -> StepAttachment:
        """Keep a photo or file on a step (see rules.attachments), then announce the instance, whose
        step now lists it. NotFound for an unknown instance; PlanRefused for an unknown step."""

        record = partial(self._store.add_attachment, instance_id, step_id)
        added, instance = await self.files.keep(name, content_type, data, by, record, lambda done: done[0].id)
        self._announce(instance)
        return added

    async def attachments(self, instance_id: int, step_id: str) -> list[StepAttachment]:
        return await self._store.attachments(instance_id, step_id)

    def attachment_path(self, attachment: StepAttachment) -> Path:
        """Where the bytes of `attachment` are kept."""
        return self.files.path(attachment.id)

    async def get(self, instance_id: int) -> PlanRecord:
        """The plan instance; NotFound if there is none."""
        return await self._store.get(instance_id, now_ns())

    async def active(self) -> list[PlanRecord]:
        return await self._store.active(now_ns())

    async def recent(self, *, open_only: bool = False) -> list[PlanRecord]:
        return await self._store.recent(now_ns(), open_only=open_only)

    async def of_alarm(self, alarm_id: int) -> PlanRecord | None:
        return await self._store.of_alarm(alarm_id, now_ns())

    async def check_overdue(self, now: int) -> list[PlanRecord]:
        """Announce each instance with a step that has newly passed its limit undone."""
        changed = await self._store.mark_overdue(now)
        for instance in changed:
            self._announce(instance)
        return changed

    async def watch(self, every: float = OVERDUE_CHECK_S) -> None:
        """Check for overdue steps for ever; a store that is down is tried again next round, and
        logged once per outage."""
        failing = False
        while True:
            try:
                await self.check_overdue(now_ns())
                failing = False
            except Exception:
                if not failing:
                    log.exception("cannot check emergency plans for overdue steps; trying every %gs", every)
                failing = True
            await asyncio.sleep(every)

    def _announce(self, instance: PlanRecord) -> None:
        self._bus.publish_event(EventKind.PLAN, instance.as_json())
