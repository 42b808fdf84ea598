"""A rule's outcome end to end through the rules service: its alarm, its task and its plan, in
order, on SQLite and PostgreSQL; and the engine resuming a task-only condition after a restart."""

from __future__ import annotations

from typing import Any

from facility.model import Quality, Reading, now_ns
from facility.records import TaskRecord
from facility.vocabulary import Text
from rules.schedules import Due
from tests.rules.conftest import MakeSite, rules_running
from testsupport.system import eventually

ENTRAPMENT = """\
rules:
  - id: entrapment
    title: {zh: "{device_name} 困人", en: "{device_name}: passengers trapped"}
    devices: {types: [elevator]}
    when: not moving and not in_door_zone and alarm_button
    clear: in_door_zone
    priority: emergency
    outcome: both
    task: {team: lift-vendor, sla: 30m, checklist: ["release the passengers", "find the cause"]}
    plan: elevator-entrapment
  - id: door-cycles
    title: {zh: "{device_name} 门开关次数到保养", en: "{device_name}: door service due"}
    devices: {types: [elevator]}
    when: door_cycles > 100000
    priority: low
    outcome: task
"""


def lift(ts: int, **values: Any) -> list[Reading]:
    return [Reading("lift-1", k, v, Quality.GOOD, ts) for k, v in values.items()]


async def test_an_entrapment_raises_its_alarm_opens_its_task_and_its_plan(make_site: MakeSite, ops_url: str) -> None:
    site = make_site(ENTRAPMENT)
    async with rules_running(site, ops_url) as (service, bus, store):
        t = now_ns()
        bus.publish_readings(lift(t, moving=False, in_door_zone=False, alarm_button=True))
        (alarm,) = await eventually(store.alarms.list_alarms, 10)
        (task,) = await eventually(service.lifecycle.tasks.list, 10)
        (plan,) = await eventually(service.lifecycle.plans.active, 10)
        assert alarm.priority == "emergency" and alarm.title.en == "lift-1: passengers trapped"
        assert task.alarm_id == alarm.id and task.team == "lift-vendor" and task.kind == "emergency"
        assert task.due == t + 30 * 60 * 10**9
        assert [item.text.en for item in task.checklist] == ["release the passengers", "find the cause"]
        assert plan.plan == "elevator-entrapment" and plan.alarm == alarm.id

        bus.publish_readings(lift(t + 10**9, in_door_zone=True))  # released at a floor

        async def cleared() -> TaskRecord | None:
            found = await service.lifecycle.tasks.get(task.id)
            return found if found and not found.condition_active else None

        await eventually(cleared, 10)
        (returned,) = await store.alarms.list_alarms()
        assert returned.state == "rtn_unacknowledged"
        assert len(await service.lifecycle.plans.active()) == 1  # the plan stays open until staff finish it


async def test_a_task_only_rule_opens_no_alarm_and_resumes_after_a_restart(make_site: MakeSite, ops_url: str) -> None:
    site = make_site(ENTRAPMENT)
    async with rules_running(site, ops_url) as (service, bus, store):
        bus.publish_readings(lift(now_ns(), door_cycles=100_001))
        (task,) = await eventually(service.lifecycle.tasks.list, 10)
        assert task.kind == "repair" and task.condition_active
        assert await store.alarms.list_alarms() == []
    async with rules_running(site, ops_url) as (service, bus, _store):
        bus.publish_readings(lift(now_ns(), door_cycles=12))  # the counter reset at the service visit

        async def cleared() -> TaskRecord | None:
            found = await service.lifecycle.tasks.get(task.id)
            return found if found and not found.condition_active else None

        await eventually(cleared, 10)


async def test_a_schedule_falling_due_opens_its_preventive_task(make_site: MakeSite, ops_url: str) -> None:
    site = make_site(ENTRAPMENT)
    async with rules_running(site, ops_url) as (service, _bus, _store):
        (schedule,) = [s for s in service.scheduler.schedules if s.id == "pump-room-round"]
        ts = now_ns()
        service.outcomes.due(Due(schedule, None, ts, Text(zh="计划于 09:00", en="scheduled for 09:00")))
        (task,) = await eventually(service.lifecycle.tasks.list, 10)
    assert (task.kind, task.title.en) == (schedule.spec.task.kind, schedule.spec.title.en)
    assert task.due == ts + int(schedule.spec.task.sla * 1e9)
    assert task.description == Text("计划于 09:00", "scheduled for 09:00")
    assert [i.text.zh for i in task.checklist] == [c.zh for c in schedule.spec.task.checklist]
