"""Rule outcomes while the ops store is down, for real (PostgreSQL behind a proxy that is cut, or
SQLite whose folder is gone): the service starts without it, an alarm is shown at once marked not
recorded and recorded once the store answers; the journal carries outcomes across a restart, once;
order holds across a long outage; a refusal drops only its step, a bug-like error is retried; and
people are told of such an alarm once, not again when it is recorded."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from facility.bus import Bus, Event, LocalBus
from facility.errors import Invalid
from facility.model import Quality, Reading, now_ns
from facility.readiness import Figure, PartState, Reporter, State
from facility.records import AlarmRecord, TaskRecord
from facility.site import Site
from facility.store.ops import OpsStore, OpsUnavailable
from facility.store.plans import PlanStore
from facility.store.tasks import TaskStore
from facility.vocabulary import Text
from rules.alarms import AlarmService
from rules.engine import Change
from rules.journal import Journal
from rules.notify import Notifier
from rules.plans import PlanService
from rules.schedules import Due
from rules.service import RulesService
from rules.tasks import TaskService
from tests.rules.conftest import MakeSite
from tests.rules.test_notify import make_site as notify_site
from tests.rules.test_notify import receiver
from tests.rules.test_notify import running as notifying
from tests.rules.test_outcomes import ENTRAPMENT, lift
from testsupport.proxy import Outage, outage
from testsupport.system import eventually

S = 1_000_000_000
Setup = Callable[[RulesService, OpsStore, Bus], None]


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Outage]:
    async with outage(request.param, tmp_path) as found:
        yield found


@pytest.fixture
async def pg(tmp_path: Path) -> AsyncIterator[Outage]:
    """PostgreSQL only: a proxy can cut it while a store has connections open."""
    async with outage("postgresql", tmp_path) as found:
        yield found


@asynccontextmanager
async def running(
    site: Site, url: str, journal: Path, setup: Setup | None = None
) -> AsyncIterator[tuple[RulesService, Bus, OpsStore]]:
    """The rules service started as the runtime starts it: without waiting for the ops store."""
    store = OpsStore(url, site="t")
    await store.start(wait=False)
    bus = LocalBus()
    service = RulesService(site, bus, store, journal)
    if setup is not None:
        setup(service, store, bus)
    await service.start()
    try:
        yield service, bus, store
    finally:
        await service.stop(drain_s=1.0)
        await store.close()


def low_pressure(bus: Bus, t: int) -> None:
    """Pressure low for longer than the rule's 5 s."""
    for ts in (t, t + 6 * S):
        bus.publish_readings(
            [Reading("pump-1", p, v, Quality.GOOD, ts) for p, v in (("running", True), ("outlet_pressure", 0.2))]
        )


def pressure_back(bus: Bus, t: int) -> None:
    bus.publish_readings([Reading("pump-1", "outlet_pressure", 0.35, Quality.GOOD, t)])


async def next_alarm(events: asyncio.Queue[Event], timeout: float = 15) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            event = await events.get()
            if event.kind == "alarm":
                return event.data


async def until(condition: Callable[[], bool], timeout: float = 15) -> None:
    async def check() -> bool:
        return condition()

    await eventually(check, timeout)


def part(reporter: Reporter, kind: str) -> PartState:
    (found,) = [p for p in reporter.parts() if p.kind == kind]
    return found


def figure(reporter: Reporter, name: str, **labels: str) -> float:
    found: list[Figure] = [f for f in reporter.figures() if f.name == name and dict(f.labels) == labels]
    return found[0].value


async def history(store: OpsStore) -> list[str]:
    (alarm,) = await store.alarms.list_alarms(include_closed=True)
    detail = await store.alarms.get_alarm(alarm.id)
    assert detail is not None
    return [h.action for h in detail.history]


async def test_an_alarm_raised_while_the_store_is_down_is_shown_at_once_and_recorded_when_it_answers(
    site: Site, db: Outage, tmp_path: Path
) -> None:
    await db.cut()
    async with running(site, db.url, tmp_path / "journal") as (service, bus, store):
        with bus.subscribe() as events:
            low_pressure(bus, now_ns())
            shown = await next_alarm(events, 5)
            assert shown["recorded"] is False and "id" not in shown
            assert (shown["rule"], shown["device"], shown["state"]) == ("low-pressure", "pump-1", "unacknowledged")
            assert shown["priority"] == "high" and shown["title"]["en"] == "P1: low pressure 0.20"
            assert part(service.outcomes, "outcomes").state is State.DEGRADED
            assert part(service.outcomes, "outcomes").detail.startswith("alarms are shown but not yet recorded")
            assert part(store, "ops_store").state is State.DOWN
            assert figure(service.outcomes, "outcomes_pending") == 1
            with pytest.raises(OpsUnavailable):
                await store.alarms.list_alarms()

            await db.restore()
            recorded = await next_alarm(events)
        assert "recorded" not in recorded and recorded["state"] == "unacknowledged"
        (stored,) = await store.alarms.list_alarms()
        assert stored.id == recorded["id"] and stored.raised_at == shown["raised_at"]
        await until(lambda: part(service.outcomes, "outcomes").state is State.UP, 10)
        assert part(store, "ops_store").state is State.UP
        assert figure(service.outcomes, "outcomes_recorded_total") == 1


async def test_the_journal_carries_outcomes_across_a_restart_and_applies_them_once(
    site: Site, db: Outage, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await db.cut()
    journal = tmp_path / "journal"
    async with running(site, db.url, journal) as (service, bus, _store):
        with bus.subscribe() as events:
            low_pressure(bus, now_ns())
            await next_alarm(events, 5)
        await service.outcomes.durable()
    assert "stopping with 1 rule outcomes journaled, not yet recorded" in caplog.text

    await db.restore()
    async with running(site, db.url, journal) as (service, _bus, store):
        await store.wait_available()
        (alarm,) = await eventually(store.alarms.list_alarms, 15)
        assert alarm.rule == "low-pressure" and alarm.state == "unacknowledged"
        await until(lambda: service.outcomes.pending == 0, 10)
    async with running(site, db.url, journal) as (service, _bus, store):
        await service.outcomes.recovered()
        await store.wait_available()
        assert await history(store) == ["raised"]  # once, however often the service starts


async def test_conditions_active_before_a_restart_clear_after_it_with_the_store_down(
    site: Site, db: Outage, tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    async with running(site, db.url, journal) as (_service, bus, store):
        await store.wait_available()
        low_pressure(bus, now_ns())
        await eventually(store.alarms.list_alarms, 15)
    await db.cut()
    async with running(site, db.url, journal) as (service, bus, store):
        pressure_back(bus, now_ns())  # the engine knows the condition is active: from the journal alone
        assert service.outcomes.pending == 1
        await db.restore()
        await until(lambda: service.outcomes.pending == 0)
        (alarm,) = await store.alarms.list_alarms()
        assert alarm.state == "rtn_unacknowledged" and not alarm.active


async def test_a_condition_the_journal_does_not_know_resumes_from_its_open_alarm_once_the_store_answers(
    site: Site, db: Outage, tmp_path: Path
) -> None:
    async with running(site, db.url, tmp_path / "journal-of-another-machine") as (_service, bus, store):
        await store.wait_available()
        low_pressure(bus, now_ns())
        await eventually(store.alarms.list_alarms, 15)
    await db.cut()
    async with running(site, db.url, tmp_path / "journal") as (_service, bus, store):
        await db.restore()

        async def cleared() -> bool:
            pressure_back(bus, now_ns())  # the pump's next poll, until the engine knows the condition
            return store.available and [a.state for a in await store.alarms.list_alarms()] == ["rtn_unacknowledged"]

        await eventually(cleared, 15)


async def test_a_condition_judged_since_the_start_is_not_overridden_by_the_store_answering_late(
    site: Site, db: Outage, tmp_path: Path
) -> None:
    async with running(site, db.url, tmp_path / "journal-of-another-machine") as (_service, bus, store):
        await store.wait_available()
        low_pressure(bus, now_ns())
        await eventually(store.alarms.list_alarms, 15)
    await db.cut()
    async with running(site, db.url, tmp_path / "journal") as (service, bus, store):
        t = now_ns()
        low_pressure(bus, t)  # judged afresh while the store is down: raised ...
        pressure_back(bus, t + 10 * S)  # ... and cleared; the store still says active
        await db.restore()
        await until(lambda: service.outcomes.pending == 0)
        low_pressure(bus, t + 20 * S)  # a new fault: the engine must know the last one cleared
        await until(lambda: service.outcomes.pending == 0)
        assert await history(store) == ["raised", "returned to normal", "raised again"]


async def test_order_is_kept_across_a_long_outage(site: Site, pg: Outage, tmp_path: Path) -> None:
    async with running(site, pg.url, tmp_path / "journal") as (service, bus, store):
        await store.wait_available()
        await pg.cut()
        t = now_ns()
        with bus.subscribe() as events:
            low_pressure(bus, t)
            pressure_back(bus, t + 10 * S)
            low_pressure(bus, t + 20 * S)
            assert service.outcomes.pending == 3
            await until(lambda: service.outcomes.retries >= 4, 30)  # several rounds down
            await pg.restore()
            await until(lambda: service.outcomes.pending == 0, 30)
            recorded = []
            while not events.empty():
                event = events.get_nowait()
                if event.kind == "alarm" and "id" in event.data:
                    recorded.append(event.data["state"])
        assert recorded == ["unacknowledged", "rtn_unacknowledged", "unacknowledged"]
        assert await history(store) == ["raised", "returned to normal", "raised again"]
        (alarm,) = await store.alarms.list_alarms()
        assert alarm.active and alarm.raised_at == t + 6 * S and alarm.activated_at == t + 26 * S


def without_plans(service: RulesService, store: OpsStore, bus: Bus) -> None:
    """The plan library as it is after the plan was removed from it (the rule still names it)."""
    service.outcomes.plans = PlanService(PlanStore(store), bus, {})


async def test_a_refusal_drops_only_its_step(
    make_site: MakeSite, db: Outage, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    site = make_site(ENTRAPMENT)
    journal = tmp_path / "journal"
    async with running(site, db.url, journal, without_plans) as (service, bus, store):
        t = now_ns()
        bus.publish_readings(lift(t, moving=False, in_door_zone=False, alarm_button=True))
        bus.publish_readings(lift(t + S, in_door_zone=True))
        await until(lambda: service.outcomes.pending == 0, 15)
        (alarm,) = await store.alarms.list_alarms()
        assert alarm.state == "rtn_unacknowledged"  # the clear after the refused step was applied
        (task,) = await service.lifecycle.tasks.list()
        assert task.alarm_id == alarm.id and not task.condition_active
        assert await service.lifecycle.plans.recent() == []
        assert figure(service.outcomes, "outcomes_refused_total", reason="refused") == 1
        assert "the plan of entrapment on lift-1 was refused" in caplog.text
    async with running(site, db.url, journal) as (service, _bus, store):
        await service.outcomes.recovered()
        await store.wait_available()
        assert figure(service.outcomes, "outcomes_refused_total", reason="refused") == 0  # dropped for good
        assert await history(store) == ["raised", "returned to normal"]


class FirstRecordFails(AlarmService):
    """Stands in for a bug in our own code (the store is real): its first `record` raises the
    ValueError a bad pydantic model or format would, and every later one works."""

    failed = False

    async def record(self, change: Change) -> tuple[AlarmRecord | None, str | None]:
        if not self.failed:
            self.failed = True
            raise ValueError("1 validation error for NewAlarm")
        return await super().record(change)


async def test_a_bug_like_error_is_retried_and_logged_not_dropped(
    site: Site, db: Outage, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def buggy(service: RulesService, store: OpsStore, bus: Bus) -> None:
        service.outcomes.alarms = FirstRecordFails(site, store, bus)

    async with running(site, db.url, tmp_path / "journal", buggy) as (service, bus, store):
        low_pressure(bus, now_ns())
        await store.wait_available()
        (alarm,) = await eventually(store.alarms.list_alarms, 15)
        assert alarm.state == "unacknowledged"
        assert "cannot record the alarm of low-pressure on pump-1; retrying" in caplog.text
        assert figure(service.outcomes, "outcomes_refused_total", reason="refused") == 0


class FirstTasksFail(TaskService):
    """Stands in for bugs in our own code on the task step (the store is real): its first `from_rule`
    raises a pydantic ValidationError, the second an exception that is on the error tree but is no
    refusal (Invalid: a field of our own making); every later one works."""

    failures = 0

    async def from_rule(self, change: Change, alarm_id: int | None = None) -> TaskRecord | None:
        self.failures += 1
        if self.failures == 1:
            BadTask.model_validate({"title": None})
        if self.failures == 2:
            raise Invalid("a field our own code got wrong", field="title")
        return await super().from_rule(change, alarm_id)


class BadTask(BaseModel):
    title: str


async def test_an_unexpected_error_in_a_step_is_retried_from_the_journal_not_dropped(
    make_site: MakeSite, db: Outage, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    site = make_site(ENTRAPMENT)
    journal = tmp_path / "journal"

    def buggy(service: RulesService, store: OpsStore, bus: Bus) -> None:
        service.outcomes.tasks = FirstTasksFail(site, TaskStore(store), bus, tmp_path / "attachments")

    async with running(site, db.url, journal, buggy) as (service, bus, store):
        bus.publish_readings(lift(now_ns(), moving=False, in_door_zone=False, alarm_button=True))
        await until(lambda: service.outcomes.recorded == 1, 30)
        (task,) = await service.lifecycle.tasks.list()
        (alarm,) = await store.alarms.list_alarms()
        assert task.alarm_id == alarm.id
        assert len(await service.lifecycle.plans.active()) == 1  # the step after the failing one ran too
        assert figure(service.outcomes, "outcomes_refused_total", reason="refused") == 0
        assert figure(service.outcomes, "outcomes_retries_total") >= 2  # and any while the store was not up yet
        assert "cannot record the task of entrapment on lift-1; retrying" in caplog.text
    async with running(site, db.url, journal) as (service, _bus, store):
        await service.outcomes.recovered()
        assert service.outcomes.pending == 0  # applied once, and the journal knows it


async def test_outcomes_applied_again_after_a_crash_change_nothing(
    make_site: MakeSite, db: Outage, tmp_path: Path
) -> None:
    site = make_site(ENTRAPMENT)
    journal, crashed = tmp_path / "journal", tmp_path / "journal-at-the-crash"
    async with running(site, db.url, journal) as (service, bus, store):
        bus.publish_readings(lift(now_ns(), moving=False, in_door_zone=False, alarm_button=True))
        (schedule,) = [s for s in service.scheduler.schedules if s.id == "pump-room-round"]
        service.outcomes.due(Due(schedule, None, now_ns(), Text(zh="计划于 09:00", en="scheduled for 09:00")))
        await store.wait_available()
        await eventually(service.lifecycle.plans.active, 15)
        await until(lambda: service.outcomes.pending == 0)
        shutil.copytree(journal, crashed)  # the disk as a power cut leaves it ...
    (crashed / "applied").unlink()  # ... before any entry was marked applied

    async with running(site, db.url, crashed) as (service, _bus, store):
        await service.outcomes.recovered()
        assert service.outcomes.recorded == 2  # both entries were applied again
        assert await history(store) == ["raised"]
        tasks = await service.lifecycle.tasks.list()
        assert sorted(t.kind for t in tasks) == sorted(["emergency", schedule.spec.task.kind])
        assert [t.recurrences for t in tasks if t.kind == "emergency"] == [0]
        assert len(await service.lifecycle.plans.recent()) == 1


async def test_a_clear_applied_again_after_a_crash_changes_nothing(
    make_site: MakeSite, db: Outage, tmp_path: Path
) -> None:
    site = make_site(ENTRAPMENT)
    journal, crashed = tmp_path / "journal", tmp_path / "journal-at-the-crash"
    async with running(site, db.url, journal) as (service, bus, store):
        t = now_ns()
        bus.publish_readings(lift(t, moving=False, in_door_zone=False, alarm_button=True))
        bus.publish_readings(lift(t + S, in_door_zone=True))
        await store.wait_available()
        await until(lambda: service.outcomes.recorded == 2)
        shutil.copytree(journal, crashed)  # the disk as a power cut leaves it: the clear applied ...
    (crashed / "applied").unlink()
    at_the_crash = Journal(crashed)
    at_the_crash.open()
    await at_the_crash.applied(1)  # ... and the raise marked applied, the clear not yet
    await at_the_crash.close()

    async with running(site, db.url, crashed) as (service, _bus, store):
        await service.outcomes.recovered()
        assert service.outcomes.recorded == 1  # the clear alone, again
        assert await history(store) == ["raised", "returned to normal"]
        (task,) = await service.lifecycle.tasks.list()
        assert not task.condition_active and task.recurrences == 0
        detail = await service.lifecycle.tasks.get(task.id)
        assert detail is not None
        assert [h.action for h in detail.history] == ["created", "condition cleared"]


async def test_people_are_told_once_of_an_alarm_raised_while_the_store_is_down(
    site: Site, db: Outage, tmp_path: Path
) -> None:
    await db.cut()
    (tmp_path / "notify").mkdir()
    async with receiver() as hook:
        told = notify_site(tmp_path / "notify", [{"name": "duty", "url": hook.url(), "min_priority": "low"}])
        async with running(site, db.url, tmp_path / "journal") as (service, bus, store):
            async with notifying(Notifier(told, store, None), bus):
                t = now_ns()
                low_pressure(bus, t)
                first = (await hook.next()).json()["data"]
                assert first["recorded"] is False and first["state"] == "unacknowledged"
                await db.restore()
                await until(lambda: service.outcomes.pending == 0)  # recorded, and announced again
                pressure_back(bus, t + 10 * S)
                second = (await hook.next()).json()["data"]
    assert second["state"] == "rtn_unacknowledged" and "recorded" not in second  # not "unacknowledged" again
