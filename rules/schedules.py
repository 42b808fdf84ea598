"""Preventive schedules: calendar rounds and meter-based maintenance that fall due as tasks.

A schedule file holds `schedules:`, a list of schedules; the library (rules/schedules/) loads first,
then the site's `schedules:` paths, and a later schedule with the same id replaces an earlier one.
Every problem is reported with its file, line and field, and nothing of a file with problems is used.

The Scheduler calls `on_due` once per occurrence, and only after storing that it did: a restart
catches up an occurrence missed while stopped once (however many were missed) and never repeats one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, time
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from facility.calendar import occurrences_before
from facility.duration import Duration
from facility.model import Quality, Reading, now_ns
from facility.site import Site
from facility.store.ops import OpsStore, OpsUnavailable
from facility.store.schedules import SITE, Mark, ScheduleStore
from facility.vocabulary import Text
from facility.yamlfile import ConfigError, ConfigWarning, Loc, Problem, YamlDoc, load_yaml, validate
from rules.ruleset import DeviceMatch
from rules.texts import FileText

log = logging.getLogger(__name__)

LIBRARY_DIR = Path(__file__).parent / "library" / "schedules"
NS = 1_000_000_000
LATE_NS = 60 * NS  # an occurrence found later than this (or two check intervals) was missed while stopped

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_TIME_OF_DAY = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MeterSpec(_Strict):
    """A counter point of each device (run hours, trips): a task each time it gains another `every`."""

    point: str
    every: float = Field(gt=0)


class When(_Strict):
    """`every: day|week|month` with `at` (and `weekday` or `day`) in the site's time zone, or `meter`."""

    every: Literal["day", "week", "month"] | None = None
    weekday: Weekday | None = None
    day: int | None = Field(default=None, ge=1, le=31)  # past a short month's end: its last day
    at: str | None = None
    meter: MeterSpec | None = None

    @field_validator("at")
    @classmethod
    def _time_of_day(cls, at: str) -> str:
        if not _TIME_OF_DAY.match(at):
            raise ValueError(f"{at!r} is not a time of day; write HH:MM, e.g. 09:00")
        return at

    @property
    def clock(self) -> time:
        hour, minute = (self.at or "00:00").split(":")
        return time(int(hour), int(minute))


class TaskSpec(_Strict):
    """The task opened when a schedule falls due."""

    kind: Literal["preventive", "inspection"] = "preventive"
    team: str = Field(min_length=1)
    sla: Duration
    checklist: list[FileText] = Field(default_factory=list)


class ScheduleSpec(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    title: FileText
    devices: DeviceMatch | None = None  # none: one task for the whole site
    when: When
    task: TaskSpec


class ScheduleFile(_Strict):
    schedules: list[ScheduleSpec]


@dataclass(frozen=True)
class Schedule:
    """A validated schedule and what it is for: device ids, or (None,) for the whole site."""

    spec: ScheduleSpec
    targets: tuple[str | None, ...]
    source: str  # file:line, to explain where a schedule came from
    warnings: tuple[ConfigWarning, ...] = ()  # what loads but is likely a slip (a text in one language)

    @property
    def id(self) -> str:
        return self.spec.id


@dataclass(frozen=True)
class Due:
    """One occurrence of a schedule: open its task for `device_id` (None: the site)."""

    schedule: Schedule
    device_id: str | None
    ts: int  # UTC ns of the occurrence: its calendar time, or when the meter passed its mark
    reason: Text


def schedule_paths(site: Site) -> list[Path]:
    """Schedule files in the order they load: the library, then the site's own."""
    paths: list[Path] = []
    for source in [LIBRARY_DIR] + [site.path(p) for p in site.schedules]:
        paths.extend(sorted(source.glob("*.yaml")) if source.is_dir() else [source])
    return paths


def load_schedules(site: Site, paths: list[Path] | None = None) -> list[Schedule]:
    """Load and validate schedule files for `site`; a later schedule with the same id replaces an earlier one."""
    problems: list[Problem] = []
    by_id: dict[str, Schedule] = {}
    for path in paths if paths is not None else schedule_paths(site):
        try:
            for schedule in _load_file(path, site):
                by_id[schedule.id] = schedule
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return list(by_id.values())


def _load_file(path: Path, site: Site) -> list[Schedule]:
    doc = load_yaml(path)
    parsed = validate(ScheduleFile, doc)
    problems: list[Problem] = []
    out: list[Schedule] = []
    seen: set[str] = set()
    for i, spec in enumerate(parsed.schedules):
        loc: Loc = ("schedules", i)
        if spec.id in seen:
            problems.append(doc.problem((*loc, "id"), f"schedule id {spec.id!r} appears twice in this file"))
        seen.add(spec.id)
        targets: tuple[str | None, ...] = (
            (None,) if spec.devices is None else tuple(d.id for d in site.devices if spec.devices.matches(d))
        )
        found = _when_problems(doc, (*loc, "when"), spec, site, targets)
        if found:
            problems.extend(found)
            continue
        out.append(Schedule(spec, targets, f"{path}:{doc.line_of(loc)}", tuple(doc.one_language(loc))))
    if problems:
        raise ConfigError(problems)
    return out


def _when_problems(
    doc: YamlDoc, loc: Loc, spec: ScheduleSpec, site: Site, targets: tuple[str | None, ...]
) -> list[Problem]:
    """What is wrong with the combination of `when` fields, each at the field it concerns."""
    when = spec.when
    calendar = {"every": when.every, "weekday": when.weekday, "day": when.day, "at": when.at}
    if when.meter is not None:
        problems = [
            doc.problem((*loc, name), "a meter schedule takes no calendar fields")
            for name, value in calendar.items()
            if value is not None
        ]
        if spec.devices is None:
            return [*problems, doc.problem((*loc, "meter"), "a meter is a point of a device: give `devices`")]
        for device_id in targets:
            assert device_id is not None
            device = site.device(device_id)
            profile = site.profile_of(device)
            if when.meter.point not in profile.points:
                known = ", ".join(sorted(profile.points))
                message = f"{device_id} (profile {device.profile!r}) has no point {when.meter.point!r} (known: {known})"
                problems.append(doc.problem((*loc, "meter", "point"), message))
        return problems
    if when.every is None:
        return [doc.problem(loc, "give `every: day|week|month` with `at`, or `meter: {point, every}`")]
    problems = [] if when.at is not None else [doc.problem((*loc, "at"), f"every {when.every} needs `at`, e.g. 09:00")]
    if when.every == "week" and when.weekday is None:
        problems.append(doc.problem((*loc, "weekday"), "every week needs `weekday` (mon ... sun)"))
    if when.every == "month" and when.day is None:
        problems.append(doc.problem((*loc, "day"), "every month needs `day` (1 to 31; 31 means the month's last day)"))
    if when.every != "week" and when.weekday is not None:
        problems.append(doc.problem((*loc, "weekday"), f"every {when.every} takes no `weekday`"))
    if when.every != "month" and when.day is not None:
        problems.append(doc.problem((*loc, "day"), f"every {when.every} takes no `day`"))
    return problems


@dataclass(slots=True)
class _Meter:
    """A meter schedule's state for one device; `mark` is None until the stored baseline is loaded."""

    schedule: Schedule
    device_id: str
    point: str
    every: float
    mark: float | None = None
    seen: float | None = None  # the last value judged
    early: list[tuple[float, int]] = field(default_factory=list)  # first and last (value, ts) before loading


class Scheduler:
    """Calls `on_due` once per occurrence of each schedule; `on_due` must be quick (it enqueues)."""

    def __init__(
        self,
        site: Site,
        store: OpsStore,
        on_due: Callable[[Due], None],
        schedules: list[Schedule] | None = None,
        interval: float = 5.0,
    ) -> None:
        self.schedules = load_schedules(site) if schedules is None else schedules
        self.interval = interval
        try:
            self._zone = ZoneInfo(site.site.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                [Problem("site", None, "site.timezone", f"unknown time zone {site.site.timezone!r}")]
            ) from None
        self._ops = store
        self._store = ScheduleStore(store.sessions)
        self._on_due = on_due
        self._marks: dict[tuple[str, str], Mark] | None = None  # loaded by the first check
        self._dirty: dict[tuple[str, str], Mark] = {}  # marks to store before announcing what they mark
        self._waiting: list[Due] = []  # meter occurrences whose marks are not stored yet
        self._wake = asyncio.Event()
        self._meters: dict[tuple[str, str], list[_Meter]] = {}  # by (device, point)
        for schedule in self.schedules:
            meter = schedule.spec.when.meter
            if meter is not None:
                for device_id in schedule.targets:
                    assert device_id is not None
                    state = _Meter(schedule, device_id, meter.point, meter.every)
                    self._meters.setdefault((device_id, meter.point), []).append(state)

    def handle(self, readings: Sequence[Reading]) -> None:
        """Bus readings handler: follow the meter points; no I/O here, `check` stores and announces."""
        for r in readings:
            meters = self._meters.get((r.device, r.point))
            if meters is None or r.quality is not Quality.GOOD or isinstance(r.value, bool | str | None):
                continue
            value = float(r.value)
            for meter in meters:
                if self._marks is None:
                    meter.early = [*meter.early[:1], (value, r.ts)]
                else:
                    self._judge(meter, value, r.ts)

    def _judge(self, meter: _Meter, value: float, ts: int) -> None:
        previous, meter.seen = meter.seen, value
        mark = meter.mark
        if mark is None or value < mark or (previous is not None and value < previous):
            if mark is not None:
                log.info(
                    "%s on %s: counter went down to %g, counting again from there",
                    meter.schedule.id,
                    meter.device_id,
                    value,
                )
            meter.mark = value  # a first sight or a reset (a replaced meter): a baseline, not a task
        elif value - mark >= meter.every:
            meter.mark = mark + (value - mark) // meter.every * meter.every
            reason = Text(
                zh=f"{meter.point} 读数 {value:g}，已过 {meter.mark:g}（每 {meter.every:g}，上次自 {mark:g} 起计）",
                en=f"{meter.point} at {value:g} passed {meter.mark:g} (every {meter.every:g}, counted from {mark:g})",
            )
            self._waiting.append(Due(meter.schedule, meter.device_id, ts, reason))
        else:
            return
        key = (meter.schedule.id, meter.device_id)
        self._dirty[key] = Mark(key[0], key[1], meter=meter.mark)
        self._wake.set()

    async def check(self, now: int) -> None:
        """Store what changed and announce what fell due by `now` (UTC ns): tests drive time through here."""
        marks = self._marks if self._marks is not None else await self._load()
        dues: list[Due] = []
        for schedule in self.schedules:
            if schedule.spec.when.meter is None:
                for device_id in schedule.targets:
                    dues.extend(self._calendar(schedule, device_id, marks, now))
        # Readings may arrive while the save awaits: they go to fresh lists, for the next check.
        dirty, self._dirty = self._dirty, {}
        passed, self._waiting = self._waiting, []
        if dirty:
            try:
                await self._store.save(dirty.values(), now)
            except BaseException:
                self._dirty = {**dirty, **self._dirty}
                self._waiting = [*passed, *self._waiting]  # calendar occurrences are found again from the marks
                raise
            marks.update(dirty)
        for due in [*passed, *dues]:
            self._on_due(due)

    def _calendar(
        self, schedule: Schedule, device_id: str | None, marks: dict[tuple[str, str], Mark], now: int
    ) -> list[Due]:
        key = (schedule.id, device_id or SITE)
        mark = marks.get(key)
        when = schedule.spec.when
        occurrences = occurrences_before(when, self._zone, now)
        latest = next(occurrences)
        if mark is None or mark.occurrence is None:
            self._dirty[key] = Mark(*key, occurrence=latest)  # a new schedule starts at its next occurrence
            return []
        if latest <= mark.occurrence:
            return []
        self._dirty[key] = replace(mark, occurrence=latest)
        missed = [latest]
        for ts in occurrences:
            if ts <= mark.occurrence:
                break
            missed.append(ts)
        return [Due(schedule, device_id, latest, self._calendar_reason(missed, now))]

    def _calendar_reason(self, missed: list[int], now: int) -> Text:
        due = self._local(missed[0])
        if len(missed) == 1 and now - missed[0] <= max(LATE_NS, int(2 * self.interval * NS)):
            return Text(zh=f"计划时间 {due}", en=f"scheduled for {due}")
        if len(missed) == 1:
            return Text(zh=f"补开：停机期间错过 {due}", en=f"caught up after a stop: due {due}")
        first = self._local(missed[-1])
        return Text(
            zh=f"补开：停机期间错过 {len(missed)} 次（{first} 至 {due}），只开一次",
            en=f"caught up after a stop: {len(missed)} missed ({first} to {due}), opened once",
        )

    def _local(self, ts: int) -> str:
        return datetime.fromtimestamp(ts / NS, self._zone).strftime("%Y-%m-%d %H:%M")

    async def _load(self) -> dict[tuple[str, str], Mark]:
        marks = await self._store.marks()
        for meters in self._meters.values():
            for meter in meters:
                stored = marks.get((meter.schedule.id, meter.device_id))
                meter.mark = stored.meter if stored else None
                for value, ts in meter.early:
                    self._judge(meter, value, ts)
                meter.early = []
        self._marks = marks
        return marks

    async def run(self) -> None:
        """Check every `interval` seconds, and at once when a meter passes its mark; first wait for
        the ops store, which holds the marks (meter readings that come meanwhile are kept)."""
        failing = False
        await self._ops.wait_available()
        while True:
            self._wake.clear()
            try:
                await self.check(now_ns())
            except OpsUnavailable as exc:
                if not failing:
                    log.warning("preventive schedules wait for the ops store: %s", exc)
                failing = True
            except Exception:
                if not failing:
                    log.exception("cannot check preventive schedules; trying again every %gs", self.interval)
                failing = True
            else:
                if failing:
                    log.warning("preventive schedules checked again")
                failing = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
