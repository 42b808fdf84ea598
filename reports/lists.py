"""The desk's lists as files for a spreadsheet: the alarm list (open alarms, or with closed ones the
alarm history), the task board and the dead letters, each a report of one section that `reports.render` makes an
Excel workbook or a CSV file of, as property companies exchange them.

A list file holds every row the view's filters match, not one page of them, up to `MAX_ROWS`: past
that, the file holds the first `MAX_ROWS` in the view's order, and a headline figure of its
section (which CSV and Excel both show, above the table) says how many rows matched, so that
nobody takes a cut list for the whole. The filters are the records the API's
JSON lists use too, so that the file and the view cannot disagree about what matches.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from facility.model import AlarmState
from facility.records import AlarmRecord, TaskKind, TaskStatus
from facility.site import Site
from facility.store.dead_letters import LetterFilter, LetterKeys, letter_page
from facility.store.ops import OpsStore
from facility.store.reads.tasks import board
from facility.store.reads.view import open_view
from facility.vocabulary import Text
from reports.model import Column, Figure, Report, ReportKind, Row, Section, text
from reports.scope import Scope
from reports.task_lists import COLUMNS as TASK_COLUMNS
from reports.task_lists import task_row

MAX_ROWS = 10_000  # a month of a large estate's alarms; a spreadsheet past this is not read by people

ALARM_COLUMNS = [
    Column("id", text("报警", "Alarm"), "count"),
    Column("raised_at", text("发生时间", "Raised"), "time"),
    Column("priority", text("优先级", "Priority"), "word"),
    Column("state", text("状态", "State"), "word"),
    Column("title", text("报警内容", "Alarm")),
    Column("device", text("设备", "Device")),
    Column("building", text("楼栋", "Building")),
    Column("system", text("系统", "System"), "word"),
    Column("acked_by", text("确认人", "Acknowledged by"), "name"),
    Column("acked_at", text("确认时间", "Acknowledged"), "time"),
    Column("cleared_at", text("恢复时间", "Returned to normal"), "time"),
]


LETTER_COLUMNS = [
    Column("id", text("编号", "Letter"), "count"),
    Column("ts", text("时间", "Time"), "time"),
    Column("source", text("来源", "Source")),
    Column("device", text("设备", "Device")),
    Column("key", text("主题或测点", "Topic or key")),
    Column("reason", text("原因（系统原文）", "Reason")),
    Column("payload", text("原始内容", "What came")),
]
LETTER_SOURCES = {
    "mqtt": text("MQTT 报文", "MQTT message"),
    "modbus": text("Modbus 读数", "Modbus value"),
    "telemetry": text("存储拒收", "Refused by the store"),
    "webhook": text("外发通知", "Notification"),
}


@dataclass(frozen=True)
class AlarmFilter:
    """The alarm list's filters (each empty or None: any); times are UTC ns of when alarms were raised."""

    open_only: bool = True
    states: tuple[AlarmState, ...] = ()
    priorities: tuple[str, ...] = ()
    since: int | None = None
    until: int | None = None
    sort: str = "desk"  # one of facility.store.alarm_pages.SORTS

    async def page(
        self, ops: OpsStore, devices: Collection[str] | None, limit: int, offset: int = 0
    ) -> tuple[list[AlarmRecord], int]:
        """The alarms matching, of `devices` (None: any), in the list's order; and how many match."""
        return await ops.pages.page(
            open_only=self.open_only,
            states=self.states,
            priorities=self.priorities,
            devices=devices,
            since=self.since,
            until=self.until,
            sort=self.sort,
            limit=limit,
            offset=offset,
        )


@dataclass(frozen=True)
class TaskFilter:
    """The task board's filters (each empty or None: any)."""

    status: tuple[TaskStatus, ...] = ()
    kind: TaskKind | None = None
    team: str | None = None
    vendor: str | None = None
    overdue: bool | None = None

    def store_filters(self) -> dict[str, Any]:
        """As the task store's `list` and `count` take them."""
        return {
            "status": self.status,
            "kind": self.kind,
            "team": self.team,
            "vendor": self.vendor,
            "overdue": self.overdue,
        }


async def alarm_list(
    site: Site,
    ops: OpsStore,
    devices: Collection[str] | None,
    filters: AlarmFilter,
    now: int,
    *,
    max_rows: int = MAX_ROWS,
) -> Report:
    """The alarms matching `filters` of `devices` (None: the whole site) as a report of one
    section, at most `max_rows` of them."""
    scope = Scope(site, devices)
    found, total = await filters.page(ops, devices, max_rows)
    rows: list[Row] = [
        {
            "id": a.id,
            "raised_at": a.raised_at,
            "priority": a.priority,
            "state": a.state,
            "title": a.title,
            "device": scope.name(a.device),
            "building": scope.building(a.device),
            "system": scope.system(a.device),
            "acked_by": a.acked_by,
            "acked_at": a.acked_at,
            "cleared_at": a.cleared_at,
        }
        for a in found
    ]
    title = text("报警列表", "Alarm list") if filters.open_only else text("报警历史", "Alarm history")
    start = filters.since if filters.since is not None else min((a.raised_at for a in found), default=now)
    end = filters.until if filters.until is not None else now
    return _list(scope, "alarms", title, start, end, now, ALARM_COLUMNS, rows, total)


async def task_list(
    site: Site,
    ops: OpsStore,
    devices: Collection[str] | None,
    filters: TaskFilter,
    now: int,
    *,
    latest_first: bool = False,
    max_rows: int = MAX_ROWS,
) -> Report:
    """The tasks matching `filters` of `devices` (None: the whole site; site-wide tasks always) as a
    report of one section, laid out as the reports list tasks, at most `max_rows` of them; overdue
    is judged at `now`."""
    scope = Scope(site, devices)
    async with open_view(ops, scope.limit) as view:
        found, total = await board(view, now, **filters.store_filters(), latest_first=latest_first, limit=max_rows)
    rows = [task_row(scope, row) for row in found]
    start = min((task.created_at for task in found), default=now)
    return _list(scope, "tasks", text("工单列表", "Task list"), start, now, now, TASK_COLUMNS, rows, total)


async def dead_letter_list(
    site: Site, ops: OpsStore, devices: Collection[str] | None, chosen: LetterFilter, now: int
) -> Report:
    """The dead letters `chosen` (newest first; its scope the user's buildings, as the list's is) as
    a report of one section on `devices` (None: the whole site), at most MAX_ROWS of them. The reason
    is the system's text as it wrote it, and the payload what came, as the engineer needs them."""
    scope = Scope(site, devices)
    keys = LetterKeys(site)
    found, total = await letter_page(ops, chosen, MAX_ROWS, 0)
    rows: list[Row] = []
    for letter in found:
        device = keys.device_of(letter.source, letter.key)
        rows.append(
            {
                "id": letter.id,
                "ts": letter.ts,
                "source": LETTER_SOURCES.get(letter.source, letter.source),
                "device": scope.name(device),
                "key": letter.key,
                "reason": letter.reason,
                "payload": letter.payload,
            }
        )
    start = chosen.since if chosen.since is not None else min((r.ts for r in found), default=now)
    return _list(scope, "dead_letters", text("数据异常", "Dead letters"), start, now, now, LETTER_COLUMNS, rows, total)


def _list(
    scope: Scope,
    kind: ReportKind,
    title: Text,
    start: int,
    end: int,
    now: int,
    columns: list[Column],
    rows: list[Row],
    total: int,
) -> Report:
    report = scope.report(kind, title, start, end, now)
    section = Section(kind, title, columns=columns, rows=rows)
    if total > len(rows):
        cut = text(
            f"文件只含前 {len(rows)} 条：请缩小筛选范围后导出其余的",
            f"the file holds the first {len(rows)}: narrow the filters to export the rest",
        )
        section.figures.append(
            Figure("matching", text("符合条件的条数", "Rows matching"), total, benchmark=cut, ok=False)
        )
    report.sections.append(section)
    return report
