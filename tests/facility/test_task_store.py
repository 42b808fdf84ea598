"""The task store keeps the status machine, one open task per rule and device, checklists, notes,
history and vendor response times; on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest

from facility.errors import NotFound
from facility.records import NewAlarm, NewTask, TaskKind, TaskRecord, TaskStatus
from facility.store.ops import OpsStore
from facility.store.tasks import TaskError, TaskNotFound, TaskStore
from facility.vocabulary import Text

MIN = 60 * 10**9


@pytest.fixture
def ops(ops_store: OpsStore) -> OpsStore:
    return ops_store


def manual(
    ts: int,
    *,
    due: int | None = None,
    kind: TaskKind = TaskKind.COMPLAINT,
    team: str = "",
    vendor: str | None = None,
) -> NewTask:
    return NewTask(
        title=Text("3号楼漏水", "Leak in building 3"),
        kind=kind,
        priority="medium",
        due=ts + 60 * MIN if due is None else due,
        ts=ts,
        by="desk-wang",
        source="10.0.0.5",
        team=team,
        vendor=vendor,
    )


def from_rule(ts: int, *, alarm_id: int | None = None) -> NewTask:
    return NewTask(
        title=Text("P1 出口压力低", "P1: low outlet pressure"),
        description=Text("压力 0.18", "pressure 0.18"),
        kind=TaskKind.REPAIR,
        priority="high",
        due=ts + 240 * MIN,
        ts=ts,
        by="rules",
        source="rules",
        team="water",
        rule_id="low-pressure",
        device_id="pump-1",
        alarm_id=alarm_id,
        checklist=(Text("查看压力表", "read the gauge"), Text.same("reset VFD")),
    )


async def test_status_moves_follow_the_machine_and_refusals_name_both_states(ops: OpsStore) -> None:
    tasks = TaskStore(ops)
    task = await tasks.create(manual(1))
    assert (task.status, task.source) == ("open", {"kind": "manual", "by": "desk-wang"})
    tid = task.id

    with pytest.raises(TaskError, match="cannot go from open to resolved"):
        await tasks.set_status(tid, TaskStatus.RESOLVED, "li", "", 2)
    with pytest.raises(TaskError, match="from open to assigned: assign it to someone"):
        await tasks.set_status(tid, TaskStatus.ASSIGNED, "li", "", 2)

    assigned = await tasks.assign(tid, "li", "desk-wang", "10.0.0.5", 3)
    assert (assigned.status, assigned.assignee) == ("assigned", "li")
    under_way = await tasks.set_status(tid, TaskStatus.IN_PROGRESS, "li", "app", 4)
    assert under_way.arrived_at == 4
    handed_over = await tasks.assign(tid, "zhao", "desk-wang", "10.0.0.5", 5)
    assert (handed_over.status, handed_over.assignee) == ("in_progress", "zhao")
    resolved = await tasks.set_status(tid, TaskStatus.RESOLVED, "zhao", "app", 6)
    assert resolved.resolved_at == 6
    verified = await tasks.set_status(tid, TaskStatus.VERIFIED, "desk-wang", "10.0.0.5", 7)
    assert (verified.status, verified.closed_at) == ("verified", 7)

    with pytest.raises(TaskError, match="cannot go from verified to cancelled"):
        await tasks.set_status(tid, TaskStatus.CANCELLED, "desk-wang", "", 8)
    with pytest.raises(TaskError, match="is verified: it cannot be assigned"):
        await tasks.assign(tid, "li", "desk-wang", "", 8)

    detail = await tasks.get(tid, 9)
    assert detail is not None
    assert [(h.ts, h.action, h.actor, h.source, h.detail) for h in detail.history] == [
        (1, "created", "desk-wang", "10.0.0.5", "Leak in building 3"),
        (3, "assigned", "desk-wang", "10.0.0.5", "to li"),
        (4, "status", "li", "app", "assigned -> in_progress"),
        (5, "assigned", "desk-wang", "10.0.0.5", "from li to zhao"),
        (6, "status", "zhao", "app", "in_progress -> resolved"),
        (7, "status", "desk-wang", "10.0.0.5", "resolved -> verified"),
    ]


async def test_any_unfinished_task_can_be_cancelled_and_then_stays_closed(ops: OpsStore) -> None:
    tasks = TaskStore(ops)
    for steps in ([], [TaskStatus.IN_PROGRESS], [TaskStatus.IN_PROGRESS, TaskStatus.RESOLVED]):
        tid = (await tasks.create(manual(1))).id
        if steps:
            await tasks.assign(tid, "li", "wang", "", 2)
        for ts, step in enumerate(steps, start=3):
            await tasks.set_status(tid, step, "li", "", ts)
        cancelled = await tasks.set_status(tid, TaskStatus.CANCELLED, "wang", "", 10)
        assert (cancelled.status, cancelled.closed_at) == ("cancelled", 10)
        with pytest.raises(TaskError, match="from cancelled to in_progress"):
            await tasks.set_status(tid, TaskStatus.IN_PROGRESS, "li", "", 11)


async def test_a_recurrence_counts_on_the_open_task_and_verify_waits_for_the_condition(ops: OpsStore) -> None:
    alarm, _ = await ops.alarms.raise_alarm(NewAlarm("low-pressure", "pump-1", "high", "低", "low", "", "", 1))
    tasks = TaskStore(ops)
    first, changed = await tasks.raise_from_rule(from_rule(1, alarm_id=alarm.id))
    assert changed and first.source == {"kind": "rule", "rule": "low-pressure", "device": "pump-1"}
    assert (first.alarm_id, first.team, first.condition_active) == (alarm.id, "water", True)
    assert [i.as_json()["text"] for i in first.checklist] == [
        {"zh": "查看压力表", "en": "read the gauge"},
        {"zh": "reset VFD", "en": "reset VFD"},
    ]

    again, changed = await tasks.raise_from_rule(from_rule(2))
    assert not changed and again.recurrences == 0  # still active: not a recurrence
    assert await tasks.condition_cleared("low-pressure", "pump-1", 3) is not None
    recurred, changed = await tasks.raise_from_rule(from_rule(4))
    assert changed and recurred.id == first.id and recurred.recurrences == 1
    assert recurred.condition_active and recurred.alarm_id == alarm.id

    tid = first.id
    await tasks.assign(tid, "li", "wang", "", 5)
    await tasks.set_status(tid, TaskStatus.IN_PROGRESS, "li", "", 6)
    await tasks.set_status(tid, TaskStatus.RESOLVED, "li", "", 7)
    for item in (0, 1):  # a task is verified with its checklist done
        await tasks.tick(tid, item, True, "li", "", 7)
    with pytest.raises(TaskError, match="condition of rule low-pressure on pump-1 has not cleared"):
        await tasks.set_status(tid, TaskStatus.VERIFIED, "wang", "", 8)
    await tasks.condition_cleared("low-pressure", "pump-1", 9)
    assert (await tasks.set_status(tid, TaskStatus.VERIFIED, "wang", "", 10)).status == "verified"
    assert await tasks.condition_cleared("low-pressure", "pump-1", 11) is None  # nothing open waits

    second, changed = await tasks.raise_from_rule(from_rule(12))
    assert changed and second.id != tid and second.recurrences == 0
    detail = await tasks.get(tid, 13)
    assert detail is not None
    assert [h.action for h in detail.history] == [
        "created",
        "condition cleared",
        "recurred",
        "assigned",
        "status",
        "status",
        "ticked",
        "ticked",
        "condition cleared",
        "status",
    ]


async def test_open_rule_tasks_survive_a_restart(ops_url: str) -> None:
    store = OpsStore(ops_url, site="t")
    await store.start()
    raised, _ = await TaskStore(store).raise_from_rule(from_rule(1))
    await store.close()

    reopened = OpsStore(ops_url, site="t")
    await reopened.start()
    tasks = TaskStore(reopened)
    assert await tasks.active_conditions() == [("low-pressure", "pump-1")]
    again, changed = await tasks.raise_from_rule(from_rule(2))
    assert not changed and again.id == raised.id
    await reopened.close()


async def test_checklist_items_and_notes_keep_who_and_when(ops: OpsStore) -> None:
    tasks = TaskStore(ops)
    tid = (await tasks.raise_from_rule(from_rule(1)))[0].id
    ticked = await tasks.tick(tid, 1, True, "li", "app", 2)
    assert [(i.n, i.done, i.by, i.at) for i in ticked.checklist] == [
        (0, False, None, None),
        (1, True, "li", 2),
    ]
    unticked = await tasks.tick(tid, 1, False, "li", "app", 3)
    assert not unticked.checklist[1].done
    with pytest.raises(TaskError, match="has no checklist item 2 \\(it has 2\\)"):
        await tasks.tick(tid, 2, True, "li", "app", 4)
    noted = await tasks.add_note(tid, "换了压力传感器", "li", "app", 5)
    assert [n.as_json() for n in noted.notes] == [{"ts": 5, "by": "li", "text": "换了压力传感器"}]

    await tasks.set_status(tid, TaskStatus.CANCELLED, "wang", "", 6)
    with pytest.raises(TaskError, match="is cancelled: its checklist is closed"):
        await tasks.tick(tid, 0, True, "li", "app", 7)
    with pytest.raises(TaskNotFound):
        await tasks.add_note(9999, "x", "li", "", 8)
    with pytest.raises(NotFound, match="no task 9999"):
        await tasks.get(9999, 8)


async def test_list_filters_and_overdue_follow_the_clock(ops: OpsStore) -> None:
    tasks = TaskStore(ops)
    late = await tasks.create(manual(0, due=100, team="water"))
    soon = await tasks.create(manual(0, due=300, kind=TaskKind.REPAIR, team="water", vendor="lifts-co"))
    done = await tasks.create(manual(0, due=50, kind=TaskKind.INSPECTION, team="power"))
    await tasks.assign(done.id, "li", "wang", "", 1)
    await tasks.set_status(done.id, TaskStatus.IN_PROGRESS, "li", "", 2)
    await tasks.set_status(done.id, TaskStatus.RESOLVED, "li", "", 3)

    def ids(found: list[TaskRecord]) -> list[object]:
        return [t.id for t in found]

    assert ids(await tasks.list(200)) == [done.id, late.id, soon.id]  # soonest due first
    assert ids(await tasks.list(200, overdue=True)) == [late.id]  # resolved work is not late
    assert ids(await tasks.list(200, overdue=False)) == [done.id, soon.id]
    assert ids(await tasks.list(400, overdue=True)) == [late.id, soon.id]
    assert [t.overdue for t in await tasks.list(200)] == [False, True, False]
    assert ids(await tasks.list(200, team="water", kind=TaskKind.REPAIR)) == [soon.id]
    assert ids(await tasks.list(200, vendor="lifts-co")) == [soon.id]
    assert ids(await tasks.list(200, status=[TaskStatus.OPEN, TaskStatus.RESOLVED])) == ids(await tasks.list(200))
    assert ids(await tasks.list(200, status=[TaskStatus.RESOLVED])) == [done.id]


async def test_vendor_sla_counts_arrivals_against_the_limit(ops: OpsStore) -> None:
    tasks = TaskStore(ops)

    async def call_out(created: int, arrived: int | None, kind: TaskKind = TaskKind.EMERGENCY) -> int:
        tid = (await tasks.create(manual(created, kind=kind, vendor="lifts-co"))).id
        if arrived is not None:
            await tasks.assign(tid, "lift engineer", "wang", "", created)
            await tasks.set_status(tid, TaskStatus.IN_PROGRESS, "lift engineer", "", arrived)
        return tid

    await call_out(0, 20 * MIN)  # met
    await call_out(10 * MIN, 50 * MIN, TaskKind.REPAIR)  # missed: 40 min
    await call_out(60 * MIN, None)  # nobody came: past the limit at 120 min
    await call_out(110 * MIN, None)  # nobody yet, still within the limit
    await call_out(0, 90 * MIN, TaskKind.PREVENTIVE)  # scheduled work: not a call-out
    cancelled = await call_out(5 * MIN, None)
    await tasks.set_status(cancelled, TaskStatus.CANCELLED, "wang", "", 6 * MIN)  # called off: not counted
    await call_out(200 * MIN, 300 * MIN)  # outside the period
    await tasks.create(manual(0, vendor="pumps-co"))

    report = await tasks.vendor_sla({"lifts-co": 30 * MIN, "doors-co": 60 * MIN}, 0, 200 * MIN, 120 * MIN)
    lifts_sla = report["lifts-co"]
    assert (lifts_sla.tasks, lifts_sla.met, lifts_sla.missed) == (4, 1, 1)
    assert (lifts_sla.open_past_limit, lifts_sla.waiting) == (1, 1)
    assert (lifts_sla.mean_response_ns, lifts_sla.worst_response_ns) == (30 * MIN, 40 * MIN)
    assert (report["doors-co"].tasks, report["doors-co"].mean_response_ns) == (0, None)
    assert set(report) == {"lifts-co", "doors-co"}
