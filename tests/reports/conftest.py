"""A small estate in Asia/Shanghai and helpers that seed its ops store through the stores' own
methods, at explicit times, so that every figure of a report can be worked out by hand."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from facility.model import Priority
from facility.records import NewAlarm, NewTask, TaskKind, TaskStatus
from facility.site import Site, load_site
from facility.store.ops import OpsStore
from facility.store.tasks import TaskStore
from facility.vocabulary import Text
from rules.ruleset import Rule, load_rules
from rules.schedules import Schedule, load_schedules

ZONE = ZoneInfo("Asia/Shanghai")
MINUTE = 60 * 1_000_000_000
HOUR = 60 * MINUTE

SITE = """\
site: {id: estate, name: Test Garden, timezone: Asia/Shanghai}
use_rule_library: false
rules: [rules.yaml]
vendors:
  - {id: otis, name: Otis service, arrive_within: 30m}
devices:
  - {id: pump-1, name: Pump 1, profile: booster_pump, location: {building: B1}, modbus: {port: 1502}}
  - {id: pump-2, name: Pump 2, profile: booster_pump, location: {building: B2}, modbus: {port: 1502, unit: 2}}
  - {id: lift-1, name: Lift 1, profile: elevator, vendor: otis, location: {building: B1}, mqtt: {topic: a}}
  - {id: fire-1, name: Fire panel, profile: fire_panel, location: {building: B1}, modbus: {port: 1502, unit: 3}}
  - {id: sump-1, name: Sump 1, profile: sump_pit, location: {building: G}, modbus: {port: 1502, unit: 4}}
"""

RULES = """\
rules:
  - id: device-offline
    title: {zh: "{device_name} 通讯中断", en: "{device_name}: communication lost"}
    devices: {}
    when: offline()
    for: 30s
    priority: high
  - id: low-pressure
    title: {zh: "{device_name} 压力低", en: "{device_name}: low pressure"}
    devices: {types: [booster_pump]}
    when: outlet_pressure < 0.25
    priority: high
  - id: entrapment
    title: {zh: "{device_name} 困人", en: "{device_name}: passengers trapped"}
    devices: {types: [elevator]}
    when: alarm_button and not in_door_zone
    priority: emergency
  - id: sump-high
    title: {zh: "{device_name} 水位高", en: "{device_name}: high level"}
    devices: {types: [sump_pit]}
    when: high_float
    priority: low
"""

PRIORITY_OF = {"device-offline": "high", "low-pressure": "high", "entrapment": "emergency", "sump-high": "low"}


def rules_of(site: Site) -> list[Rule]:
    """The site's rules as its files are now: what `facility report` passes the reports."""
    return load_rules(site)


def schedules_of(site: Site) -> list[Schedule]:
    """The site's schedules as its files are now."""
    return load_schedules(site)


def at(text: str) -> int:
    """UTC ns of a local time in the estate's zone, e.g. at("2026-11-27 09:00")."""
    return int(datetime.fromisoformat(text).replace(tzinfo=ZONE).timestamp()) * 1_000_000_000


def estate_in(folder: Path) -> Site:
    """The estate's site and rule files written to `folder`, and the site loaded."""
    (folder / "rules.yaml").write_text(RULES)
    (folder / "site.yaml").write_text(SITE)
    return load_site(folder / "site.yaml")


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return estate_in(tmp_path)


@pytest.fixture
async def store(ops_url: str) -> AsyncIterator[OpsStore]:
    store = OpsStore(ops_url, site="estate")
    await store.start()
    yield store
    await store.close()


class Seed:
    """Alarms and tasks written through OpsStore and TaskStore, at the times given."""

    def __init__(self, ops: OpsStore) -> None:
        self.ops = ops
        self.tasks = TaskStore(ops)

    async def raise_(self, rule: str, device: str, when: str) -> int:
        alarm, _ = await self.ops.alarms.raise_alarm(
            NewAlarm(rule, device, PRIORITY_OF[rule], f"{device} {rule}", f"{device}: {rule}", "", "", at(when))
        )
        return int(alarm.id)

    async def clear(self, rule: str, device: str, when: str) -> None:
        assert await self.ops.alarms.return_to_normal(rule, device, at(when)) is not None

    async def ack(self, alarm: int, when: str, user: str = "ana") -> None:
        assert await self.ops.alarms.acknowledge(alarm, user, "10.0.0.1", at(when)) is not None

    async def task(
        self,
        when: str,
        due: str,
        *,
        kind: TaskKind = TaskKind.REPAIR,
        device: str | None = None,
        team: str = "",
        vendor: str | None = None,
        title: str = "",
    ) -> int:
        new = NewTask(
            title=Text(title or f"工单 {when}", title or f"task {when}"),
            kind=kind,
            priority=Priority.HIGH.value,
            due=at(due),
            ts=at(when),
            by="ana",
            team=team,
            vendor=vendor,
            device_id=device,
        )
        return int((await self.tasks.create(new)).id)

    async def move(self, task: int, when: str, *statuses: TaskStatus) -> None:
        """Move a task through `statuses`, all at one time; assigning it first when needed."""
        for status in statuses:
            if status is TaskStatus.ASSIGNED:
                await self.tasks.assign(task, "li", "ana", "", at(when))
            else:
                await self.tasks.set_status(task, status, "li", "", at(when))

    async def work(self, task: int, arrived: str, resolved: str | None = None) -> None:
        """Assigned and someone on site at `arrived`; resolved at `resolved` if given."""
        await self.move(task, arrived, TaskStatus.ASSIGNED, TaskStatus.IN_PROGRESS)
        if resolved is not None:
            await self.move(task, resolved, TaskStatus.RESOLVED)


@pytest.fixture
def seed(store: OpsStore) -> Seed:
    return Seed(store)


async def seed_october(seed: Seed) -> None:
    """A past day, for what reads the clock (the API, the command): two alarms on 5 October, one
    acknowledged in 4 minutes, one in the garage, and a site-wide complaint."""
    alarm = await seed.raise_("low-pressure", "pump-1", "2026-10-05 10:00")
    await seed.ack(alarm, "2026-10-05 10:04")
    await seed.clear("low-pressure", "pump-1", "2026-10-05 10:30")
    await seed.raise_("sump-high", "sump-1", "2026-10-05 11:00")
    await seed.task("2026-10-05 09:00", "2026-10-05 17:00", kind=TaskKind.COMPLAINT, title="noise")


def seeded_folder(data: Path) -> Path:
    """A data folder (as `facility demo --data` keeps) whose ops store holds the October day: for
    the commands that read it with `--data`."""

    async def fill() -> None:
        store = OpsStore(f"sqlite+aiosqlite:///{data / 'ops.db'}", site="estate")  # SITE's id
        await store.start()
        try:
            await seed_october(Seed(store))
        finally:
            await store.close()

    asyncio.run(fill())
    return data
