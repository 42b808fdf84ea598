"""Every report as an Excel workbook, read back with openpyxl: a sheet per section, bold headers,
times as datetimes in site time, numbers as numbers, and typed text that looks like a formula kept
as text."""

from __future__ import annotations

import io
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook
from openpyxl.workbook import Workbook

from facility.records import TaskKind
from facility.site import Site
from facility.store.ops import OpsStore
from reports import briefing, handover, monthly, render
from reports.xlsx import Block, Sheet, XColumn, workbook
from tests.reports.conftest import Seed, at, rules_of, schedules_of
from tests.reports.test_briefing import DAY, MORNING, seed_day

FORMULA = '=HYPERLINK("http://x","click")'


def book(data: bytes) -> Workbook:
    return load_workbook(io.BytesIO(data))


def header(book: Workbook, sheet: str, first: str) -> tuple[int, list[str]]:
    """The row number and the cells of the header line starting with `first` on `sheet`."""
    ws = book[sheet]
    for row in ws.iter_rows():
        if row[0].value == first:
            assert all(c.font.b for c in row if c.value is not None), f"header of {sheet} not bold"
            return row[0].row, [str(c.value) for c in row if c.value is not None]
    raise AssertionError(f"no header starting with {first!r} on {sheet}")


@pytest.mark.parametrize("lang", ["zh", "en"])
async def test_the_briefing_workbook_has_a_sheet_per_section_with_typed_cells(
    site: Site, store: OpsStore, seed: Seed, lang: str
) -> None:
    await seed_day(seed)
    await seed.task("2026-12-09 18:00", "2026-12-10 18:00", kind=TaskKind.COMPLAINT, title=FORMULA)
    report = await briefing(site, store, DAY, now=at(MORNING), rules=rules_of(site), schedules=schedules_of(site))
    wb = book(render(report, "xlsx", "zh" if lang == "zh" else "en"))
    zh = lang == "zh"
    sections = [s.title.zh if zh else s.title.en for s in report.sections]
    assert wb.sheetnames == ["报告" if zh else "Report", *(t[:31] for t in sections)]  # Excel: 31 at most
    assert sections[:2] == (["概要", "各系统报警（按优先级）"] if zh else ["Summary", sections[1]])
    assert wb.sheetnames[0] == ("报告" if zh else "Report")
    assert wb.worksheets[0]["A1"].value == ("晨会简报 2026-12-09" if zh else "Morning briefing 2026-12-09")

    emergencies = "紧急报警" if zh else "Emergency alarms"
    row, cells = header(wb, emergencies, "报警" if zh else "Alarm")
    assert cells[1] == ("首次报警" if zh else "First raised")
    ws = wb[emergencies]
    raised = ws.cell(row + 1, 2)
    assert raised.value == datetime(2026, 12, 9, 14, 0) and raised.is_date  # site time, a real datetime
    assert ws.cell(row + 1, 3).value == 1  # a count is a number
    assert ws.cell(row + 1, 10).value == ("已确认" if zh else "acknowledged")
    assert ws.column_dimensions["B"].width >= len("2026-12-09 14:00")

    opened = wb["新建工单" if zh else "Tasks opened"]
    (cell,) = [c for col in opened.iter_cols() for c in col if c.value == FORMULA]
    assert cell.data_type == "s"  # stored as a string, never a formula


async def test_the_handover_and_monthly_workbooks_keep_durations_and_shares_as_numbers(
    site: Site, store: OpsStore, seed: Seed
) -> None:
    alarm = await seed.raise_("low-pressure", "pump-1", "2026-10-05 10:00")
    await seed.ack(alarm, "2026-10-05 10:04")
    month = book(
        render(await monthly(site, store, 2026, 10, now=at("2026-11-02 09:00"), rules=rules_of(site)), "xlsx", "en")
    )
    summary = month["Summary"]
    values = {row[0].value: row[1] for row in summary.iter_rows(min_row=2)}
    mtta = next(cell for label, cell in values.items() if label and "acknowledge" in str(label))
    assert mtta.value == 4.0 and mtta.number_format.endswith('"min"')
    shift = book(render(await handover(site, store, at("2026-10-05 08:00"), at("2026-10-05 12:00")), "xlsx", "zh"))
    row, cells = header(shift, "报警动态", "时间")
    assert cells == ["时间", "报警", "优先级", "设备", "内容", "动作", "操作人", "说明"]
    events = shift["报警动态"]
    assert [[c.value for c in r] for r in events.iter_rows(min_row=row + 1, max_col=6)] == [
        [datetime(2026, 10, 5, 10, 0), alarm, "高", "Pump 1", "pump-1 low-pressure", "报警发生"],
        [datetime(2026, 10, 5, 10, 4), alarm, "高", "Pump 1", "pump-1 low-pressure", "确认"],  # what was done
    ]


def test_control_characters_are_written_visibly_never_refused() -> None:
    """A task title pasted with a control character (or a device's garbage) must not make the
    report fail: the file format cannot hold it, so it is written as `\\x01`."""
    table = Block([XColumn("标题", "text")], [["泵房\x01漏水\x1b[31m"]])
    wb = load_workbook(io.BytesIO(workbook([Sheet("工单", [table])], ZoneInfo("Asia/Shanghai"))))
    values = [c.value for row in wb["工单"].iter_rows() for c in row if c.value]
    assert "泵房\\x01漏水\\x1b[31m" in values
