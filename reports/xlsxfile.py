"""A report as an Excel workbook: a first sheet saying what the report is (title, site, period),
then one sheet per section, its headline figures and its table, in the language asked for.

Each value keeps its kind: times are datetimes in site time, durations minutes (the header says
so), shares percent cells, counts numbers; names of ids (priorities, states, systems) and yes/no
are words of the language, and every other text is stored as text (see `reports.xlsx`).
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from facility.vocabulary import Text
from reports.model import Cell, Column, Kind, Report, Section
from reports.values import Lang, heading, show
from reports.xlsx import Block, CellKind, Sheet, Typed, Value, XColumn, workbook

CELL_KINDS: dict[Kind, CellKind] = {
    "time": "time",
    "date": "date",
    "duration": "minutes",
    "ratio": "percent",
    "count": "number",
    "number": "number",
}
MINUTE_NS = 60 * 1_000_000_000


def render_xlsx(report: Report, lang: Lang) -> bytes:
    zone = ZoneInfo(report.timezone)
    title = report.title.pick(lang)
    about = Sheet("报告" if lang == "zh" else "Report", lines=[title, *heading(report, lang)])
    sheets = [about, *(_sheet(section, lang, zone) for section in report.sections)]
    return workbook(sheets, zone, title)


def _sheet(section: Section, lang: Lang, zone: ZoneInfo) -> Sheet:
    sheet = Sheet(section.title.pick(lang))
    if section.figures:
        head = ("指标", "数值", "基准") if lang == "zh" else ("Measure", "Value", "Benchmark")
        block = Block([XColumn(head[0]), XColumn(head[1], "number"), XColumn(head[2])])
        for f in section.figures:
            benchmark = f.benchmark.pick(lang) if f.benchmark else None
            block.rows.append([f.label.pick(lang), _figure(f.value, f.kind, lang, zone), benchmark])
        sheet.blocks.append(block)
    if section.columns:
        columns = [XColumn(_header(c, lang), CELL_KINDS.get(c.kind, "text")) for c in section.columns]
        rows = [[_value(row.get(c.key), c.kind, lang, zone) for c in section.columns] for row in section.rows]
        sheet.blocks.append(Block(columns, rows))
    if section.note is not None:
        sheet.lines.append(section.note.pick(lang))
    return sheet


def _header(column: Column, lang: Lang) -> str:
    label = column.label.pick(lang)
    if column.kind != "duration":
        return label
    return f"{label}（分钟）" if lang == "zh" else f"{label} (min)"


def _value(value: Cell, kind: Kind, lang: Lang, zone: ZoneInfo) -> Value:
    """The cell's value: a number for the kinds Excel computes with, else the text as shown."""
    if value is None or value == "":
        return None
    if isinstance(value, Text):
        return value.pick(lang)
    if isinstance(value, bool) or kind in ("word", "task_kind", "name", "flag", "text"):
        return show(value, kind, lang, zone)
    if kind == "duration" and isinstance(value, int):
        return round(value / MINUTE_NS, 1)
    if isinstance(value, int | float):
        return value
    return show(value, kind, lang, zone)


def _figure(value: Cell, kind: Kind, lang: Lang, zone: ZoneInfo) -> Value:
    """A headline figure's cell: typed one by one, as the figures of a section are of mixed kinds."""
    shown = _value(value, kind, lang, zone)
    if isinstance(shown, int | float) and not isinstance(value, bool) and kind in CELL_KINDS:
        unit = ("分钟" if lang == "zh" else "min") if kind == "duration" else ""
        return Typed(shown, CELL_KINDS[kind], unit)
    return shown
