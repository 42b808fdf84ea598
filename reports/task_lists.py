"""Tasks as reports list them: the columns of a task table, and a task line as its row."""

from __future__ import annotations

from facility.store.reads.tasks import TaskLine
from reports.model import Column, Row, text
from reports.scope import Scope

COLUMNS = [
    Column("id", text("工单", "Task"), "count"),
    Column("title", text("标题", "Title")),
    Column("kind", text("类型", "Kind"), "task_kind"),
    Column("priority", text("优先级", "Priority"), "word"),
    Column("status", text("状态", "Status"), "word"),
    Column("device", text("设备", "Device")),
    Column("team", text("班组或维保单位", "Team or vendor"), "name"),
    Column("assignee", text("负责人", "Assignee"), "name"),
    Column("due", text("期限", "Due"), "time"),
]


def task_row(scope: Scope, task: TaskLine) -> Row:
    """The row of a task: its vendor, named as the site names it, stands for its team when it has one."""
    return {
        "id": task.id,
        "title": task.title,
        "kind": task.kind,
        "priority": task.priority,
        "status": task.status,
        "device": scope.name(task.device),
        "team": scope.vendor(task.vendor) if task.vendor else task.team,
        "assignee": task.assignee,
        "due": task.due,
    }
