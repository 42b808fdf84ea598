"""The alarm list and the task board as files for a spreadsheet: every row the view's filters match
(not one page), times in site time, words of the language asked for, within the user's buildings;
a viewer may export; text that starts like a formula stays text; a list cut at its maximum says so.
On SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest

from api.app import create_app
from api.auth import TokenAuth
from facility.model import now_ns
from facility.records import TaskKind, TaskStatus
from facility.store.ops import OpsStore
from facility.store.users import Role, UserStore
from reports import render
from reports.lists import AlarmFilter, TaskFilter, alarm_list, task_list
from tests.api.context import without_plant
from tests.reports.conftest import Seed, estate_in

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass
class Estate:
    http: httpx.AsyncClient
    tokens: dict[str, str]
    alarms: dict[str, int]
    tasks: dict[str, int]

    async def export(self, user: str, what: str, **params: Any) -> httpx.Response:
        answer = await self.http.get(
            f"/api/v1/{what}/export", params=params, headers={"Authorization": f"Bearer {self.tokens[user]}"}
        )
        assert answer.status_code == 200, answer.text
        return answer


@pytest.fixture
async def estate(ops_store: OpsStore, tmp_path: Path) -> AsyncIterator[Estate]:
    """The test estate with alarms of three buildings (one closed) and tasks, one titled like a
    formula; a viewer of the whole site, a viewer of B1 and a duty officer."""
    site = estate_in(tmp_path)
    seed = Seed(ops_store)
    alarms = {
        "pump-1": await seed.raise_("low-pressure", "pump-1", "2026-10-05 10:00"),  # B1, closed below
        "sump-1": await seed.raise_("sump-high", "sump-1", "2026-10-05 11:00"),  # G
        "lift-1": await seed.raise_("entrapment", "lift-1", "2026-10-05 11:30"),  # B1
        "pump-2": await seed.raise_("low-pressure", "pump-2", "2026-10-05 12:00"),  # B2
    }
    await seed.ack(alarms["pump-1"], "2026-10-05 10:04", user="li")
    await seed.clear("low-pressure", "pump-1", "2026-10-05 10:30")
    tasks = {
        "formula": await seed.task("2026-10-05 09:00", "2026-10-05 17:00", kind=TaskKind.COMPLAINT, title="=1+2"),
        "pump-2": await seed.task("2026-10-05 12:05", "2026-10-06 12:00", device="pump-2", title="泵2 检修"),
        "lift-1": await seed.task("2026-10-05 11:35", "2026-10-05 12:05", device="lift-1", title="电梯困人"),
    }
    await seed.move(tasks["lift-1"], "2026-10-05 11:40", TaskStatus.ASSIGNED)
    users = UserStore(ops_store)
    tokens = {
        "view": await users.add("view", Role.VIEWER, ()),
        "view-b1": await users.add("view-b1", Role.VIEWER, ("B1",)),
    }
    app = create_app(without_plant(site, ops_store, tmp_path / "journal"), TokenAuth({}, users))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://desk") as http:
        yield Estate(http, tokens, alarms, tasks)


def table(content: bytes) -> list[list[Any]]:
    """The rows of the list's sheet (the second; the first says what the file is), header first."""
    book = openpyxl.load_workbook(io.BytesIO(content))
    sheet = book.worksheets[1]
    return [list(row) for row in sheet.iter_rows(values_only=True)]


async def test_the_alarm_list_file_holds_every_filtered_alarm_with_local_times_and_chinese_words(
    estate: Estate,
) -> None:
    answer = await estate.export("view", "alarms", format="xlsx", lang="zh", priority=["high", "low"])
    assert answer.headers["content-type"] == XLSX
    disposition = answer.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="alarms-estate-') and disposition.endswith('-zh.xlsx"')
    header, *rows = table(answer.content)
    assert header[:4] == ["报警", "发生时间", "优先级", "状态"]
    # Open alarms (the list's default) of priority high or low, in the desk's order (the latest change first).
    assert [(r[0], r[1], r[2], r[3], r[5], r[6], r[7]) for r in rows] == [
        (estate.alarms["pump-2"], datetime(2026, 10, 5, 12, 0), "高", "未确认", "Pump 2", "B2", "生活给水"),
        (estate.alarms["sump-1"], datetime(2026, 10, 5, 11, 0), "低", "未确认", "Sump 1", "G", "排水"),
    ]

    history = table((await estate.export("view", "alarms", format="xlsx", lang="en", open="false")).content)
    assert history[0][:4] == ["Alarm", "Raised", "Priority", "State"]
    closed = next(r for r in history[1:] if r[0] == estate.alarms["pump-1"])
    assert (closed[3], closed[8], closed[9], closed[10]) == (
        "closed",
        "li",
        datetime(2026, 10, 5, 10, 4),
        datetime(2026, 10, 5, 10, 30),
    )
    assert len(history) - 1 == len(estate.alarms)


async def test_a_user_limited_to_a_building_exports_only_its_alarms_and_tasks(estate: Estate) -> None:
    alarms = table((await estate.export("view-b1", "alarms", open="false")).content)[1:]
    assert sorted(r[0] for r in alarms) == sorted([estate.alarms["pump-1"], estate.alarms["lift-1"]])
    # Asking for another building gives nothing of it.
    other = table((await estate.export("view-b1", "alarms", open="false", building="B2")).content)[1:]
    assert other == []
    tasks = table((await estate.export("view-b1", "tasks")).content)[1:]
    # B1's lift task and the site-wide complaint; not pump-2's task in B2.
    assert sorted(r[0] for r in tasks) == sorted([estate.tasks["lift-1"], estate.tasks["formula"]])


async def test_the_task_board_file_keeps_the_board_filters_and_a_formula_stays_text(estate: Estate) -> None:
    answer = await estate.export("view", "tasks", format="csv", lang="zh")
    assert answer.headers["content-type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(answer.text.lstrip("\ufeff"))))
    header, *rows = lines
    assert header[1:6] == ["工单", "标题", "类型", "优先级", "状态"]
    by_id = {int(r[1]): r for r in rows}
    assert set(by_id) == set(estate.tasks.values())
    assert by_id[estate.tasks["formula"]][2:4] == ["'=1+2", "投诉"]  # never a formula in Excel
    assert by_id[estate.tasks["lift-1"]][5] == "已派单"
    assert by_id[estate.tasks["lift-1"]][-1] == "2026-10-05 12:05"  # due, in site time

    assigned = await estate.export("view", "tasks", format="xlsx", lang="en", status="assigned")
    header, *rows = table(assigned.content)
    assert [(r[0], r[4], r[8]) for r in rows] == [(estate.tasks["lift-1"], "assigned", datetime(2026, 10, 5, 12, 5))]


async def test_a_list_past_its_maximum_holds_the_first_rows_and_says_how_many_matched(
    ops_store: OpsStore, tmp_path: Path
) -> None:
    site = estate_in(tmp_path)
    seed = Seed(ops_store)
    for device in ("pump-1", "pump-2", "sump-1"):
        await seed.raise_("low-pressure" if device.startswith("pump") else "sump-high", device, "2026-10-05 10:00")
    report = await alarm_list(site, ops_store, None, AlarmFilter(), now_ns(), max_rows=2)
    (section,) = report.sections
    assert len(section.rows) == 2
    assert [(f.value, f.ok) for f in section.figures] == [(3, False)]
    shown = render(report, "csv", "en")
    assert "Rows matching,3,the file holds the first 2: narrow the filters to export the rest" in shown
    book = openpyxl.load_workbook(io.BytesIO(render(report, "xlsx", "zh")))
    cells = [c for row in book.worksheets[1].iter_rows(values_only=True) for c in row]
    assert "符合条件的条数" in cells and "文件只含前 2 条：请缩小筛选范围后导出其余的" in cells

    await seed.task("2026-10-05 09:00", "2026-10-05 17:00")
    whole = await task_list(site, ops_store, None, TaskFilter(), now_ns(), max_rows=2)
    assert whole.sections[0].figures == []  # not cut: no word of it
