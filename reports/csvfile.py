"""A report as one CSV file for a spreadsheet.

Every table of the report goes in, one block after another, and the first column of every line
names its section: filtering that column gives one table, which is what a spreadsheet user does
with it, and nothing needs a second file. Each block starts with its own header line; a blank line
separates blocks. The headline figures come first, as (section, measure, value, benchmark) lines.

Cells are values a spreadsheet can compute with: local times as `YYYY-MM-DD HH:MM`, durations in
minutes and shares in percent (the header says so), counts as plain numbers. The text starts with
a byte order mark, so that Excel opens the Chinese as UTF-8.

Text stays text: a text cell that starts like a formula (`=`, `+`, `-`, `@`, a tab or a carriage
return: OWASP's list for CSV injection) gets a leading `'`, so that a title someone typed into a
task cannot run as a formula when a manager opens the report. Numbers are left alone, a negative
one too: it is a number the spreadsheet should compute with, and a number cannot smuggle anything.
"""

from __future__ import annotations

import csv
import io
from zoneinfo import ZoneInfo

from facility.vocabulary import Text
from reports.model import Cell, Column, Kind, Report
from reports.periods import NS
from reports.values import Lang, show

BOM = "\ufeff"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def render_csv(report: Report, lang: Lang) -> str:
    zone = ZoneInfo(report.timezone)
    section_label = "栏目" if lang == "zh" else "section"
    blocks: list[list[list[str]]] = []
    for section in report.sections:
        name = _text(section.title.pick(lang))
        if section.figures:
            head = ["指标", "数值", "基准"] if lang == "zh" else ["measure", "value", "benchmark"]
            block = [[section_label, *head]]
            for f in section.figures:
                value = "" if f.value is None else _safe(f.value, show(f.value, f.kind, lang, zone))
                benchmark = _text(f.benchmark.pick(lang)) if f.benchmark else ""
                block.append([name, _text(f.label.pick(lang)), value, benchmark])
            blocks.append(block)
        if section.columns:
            block = [[section_label, *(_text(_header(c, lang)) for c in section.columns)]]
            block += [
                [name, *(_cell(row.get(c.key), c.kind, lang, zone) for c in section.columns)] for row in section.rows
            ]
            blocks.append(block)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for i, block in enumerate(blocks):
        if i:
            writer.writerow([])
        writer.writerows(block)
    return BOM + out.getvalue()


def _header(column: Column, lang: Lang) -> str:
    label = column.label.pick(lang)
    unit = {"duration": ("分钟", "min"), "ratio": ("%", "%")}.get(column.kind)
    if unit is None:
        return label
    return f"{label}（{unit[0]}）" if lang == "zh" else f"{label} ({unit[1]})"


def _cell(value: Cell, kind: Kind, lang: Lang, zone: ZoneInfo) -> str:
    if value is None:
        return ""
    if kind == "duration" and isinstance(value, int):
        return f"{value / NS / 60:.1f}"
    if kind == "ratio" and isinstance(value, int | float):
        return f"{value * 100:.1f}"
    return _safe(value, show(value, kind, lang, zone))


def _safe(value: Cell, shown: str) -> str:
    """`shown` as the cell of `value`: quoted if it is text that starts like a formula."""
    return _text(shown) if isinstance(value, str | Text) else shown


def _text(shown: str) -> str:
    """A text cell a spreadsheet keeps as text: a leading `'` when it starts like a formula."""
    return "'" + shown if shown.startswith(FORMULA_STARTS) else shown
