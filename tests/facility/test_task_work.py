"""A task is verified only with its checklist done, unless a manager overrides with a reason that
the task's history keeps; on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest

from facility.records import NewTask, TaskKind, TaskStatus
from facility.store.ops import OpsStore
from facility.store.tasks import ChecklistOpen, TaskStore
from facility.vocabulary import Text


async def resolved_round(tasks: TaskStore) -> int:
    """A tank round with two checklist items, worked to resolved without ticking them."""
    made = await tasks.create(
        NewTask(
            title=Text("水箱巡检", "tank round"),
            kind=TaskKind.INSPECTION,
            priority="medium",
            due=100,
            ts=1,
            by="wang",
            checklist=(Text("读液位", "read the level"), Text.same("UV lamp")),
        )
    )
    tid: int = made.id
    await tasks.assign(tid, "li", "wang", "", 2)
    await tasks.set_status(tid, TaskStatus.IN_PROGRESS, "li", "", 3)
    await tasks.set_status(tid, TaskStatus.RESOLVED, "li", "", 4)
    return tid


async def test_verifying_with_the_checklist_open_is_refused_naming_the_open_items(ops_store: OpsStore) -> None:
    tasks = TaskStore(ops_store)
    tid = await resolved_round(tasks)
    await tasks.tick(tid, 1, True, "li", "", 5)

    with pytest.raises(ChecklistOpen) as refused:
        await tasks.set_status(tid, TaskStatus.VERIFIED, "wang", "", 6)
    assert refused.value.open_items == (Text("读液位", "read the level"),)
    assert "1 checklist item(s) not done: 读液位 / read the level" in str(refused.value)
    assert "检查项未完成" in str(refused.value)
    with pytest.raises(ChecklistOpen):  # a blank reason is no reason
        await tasks.set_status(tid, TaskStatus.VERIFIED, "wang", "", 6, override="  ")
    still = await tasks.get(tid, 7)
    assert still is not None and still.status == "resolved"

    await tasks.tick(tid, 0, True, "li", "", 8)
    assert (await tasks.set_status(tid, TaskStatus.VERIFIED, "wang", "", 9)).status == "verified"


async def test_an_override_verifies_and_keeps_its_reason_and_the_open_items_in_the_history(
    ops_store: OpsStore,
) -> None:
    tasks = TaskStore(ops_store)
    tid = await resolved_round(tasks)
    reason = "UV lamp on order; level read by phone"
    verified = await tasks.set_status(tid, TaskStatus.VERIFIED, "manager-zhou", "10.0.0.9", 6, override=reason)
    assert verified.status == "verified"

    task = await tasks.get(tid, 7)
    assert task is not None
    assert [(h.action, h.actor, h.source, h.detail) for h in task.history[-2:]] == [
        ("checklist overridden", "manager-zhou", "10.0.0.9", f"{reason} (open: 读液位 / read the level; UV lamp)"),
        ("status", "manager-zhou", "10.0.0.9", "resolved -> verified"),
    ]
