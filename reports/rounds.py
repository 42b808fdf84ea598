"""The rounds and preventive maintenance a day plans: the calendar occurrences of the schedules.

The briefing takes the schedules as the caller has them (the running service's, or the site's
files as they are now) through the little it needs of one, so that reports import no rule engine;
when a schedule falls is the kernel's calendar arithmetic (facility.calendar), the same the
scheduler opens the tasks by.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from facility.calendar import Calendar, occurrences_before
from facility.vocabulary import Text
from reports.model import Column, Row, Section, text
from reports.scope import Scope

WHOLE_SITE = text("全场", "whole site")


class Words(Protocol):
    """A text in both languages."""

    @property
    def zh(self) -> str: ...
    @property
    def en(self) -> str: ...


class When(Calendar, Protocol):
    """When a schedule falls: on the calendar, or by a meter (`meter` not None), which no day plans."""

    @property
    def meter(self) -> object | None: ...


class Work(Protocol):
    """The task a schedule opens: its kind, its team, and its time limit in seconds."""

    @property
    def kind(self) -> str: ...
    @property
    def team(self) -> str: ...
    @property
    def sla(self) -> float: ...


class Spec(Protocol):
    @property
    def title(self) -> Words: ...
    @property
    def when(self) -> When: ...
    @property
    def task(self) -> Work: ...


class Planned(Protocol):
    """What the briefing needs of a schedule (rules.schedules' `Schedule`): its id, its spec, and its
    targets (device ids, or (None,) for the whole site)."""

    @property
    def id(self) -> str: ...
    @property
    def spec(self) -> Spec: ...
    @property
    def targets(self) -> tuple[str | None, ...]: ...


def rounds(scope: Scope, schedules: Iterable[Planned], start: int, end: int) -> list[Row]:
    """Calendar occurrences in [start, end) of the schedules, for their targets in view, in order."""
    found: list[tuple[int, str, Row]] = []
    for schedule in schedules:
        spec = schedule.spec
        targets = [t for t in schedule.targets if scope.sees(t)]
        if spec.when.meter is not None or not targets:
            continue
        names = WHOLE_SITE if targets == [None] else ", ".join(scope.name(t) for t in targets if t is not None)
        for at in occurrences_before(spec.when, scope.zone, end - 1):
            if at < start:
                break
            row: Row = {
                "at": at,
                "title": Text(spec.title.zh, spec.title.en),
                "kind": spec.task.kind,
                "team": spec.task.team,
                "devices": names,
                "due": at + round(spec.task.sla * 1e9),
            }
            found.append((at, schedule.id, row))
    return [row for _, _, row in sorted(found, key=lambda r: r[:2])]


def rounds_section(rows: list[Row]) -> Section:
    """The day's planned rounds as a section of the briefing."""
    return Section(
        "rounds_today",
        text("今日计划巡检与保养", "Today's rounds and preventive maintenance"),
        columns=[
            Column("at", text("计划时间", "Scheduled"), "time"),
            Column("title", text("内容", "Round")),
            Column("kind", text("类型", "Kind"), "task_kind"),
            Column("team", text("班组", "Team"), "name"),
            Column("devices", text("设备", "Devices")),
            Column("due", text("完成期限", "Due"), "time"),
        ],
        rows=rows,
        note=text(
            "按日历的计划；按运行小时等计量的保养在读数到达时开单，无法预排",
            "Calendar schedules; maintenance by meter (run hours) opens when the meter passes its mark",
        ),
    )
