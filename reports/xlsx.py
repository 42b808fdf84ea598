"""An Excel workbook (.xlsx) of typed tables: what a manager filters, sums and charts.

Made for the reports, and kept free of them so that any list (alarms, tasks) can be exported the
same way: a `Sheet` is blocks of a bold header line and rows, each column saying what its cells
are. Cells are real Excel values, not text that looks like them: times are datetimes in the site's
zone (Excel has no zones, so the header or the sheet says which), durations minutes, shares
fractions shown as percent, counts and numbers numbers.

Text stays text: a text cell is stored as a string even when it starts with `=`, `+`, `-` or `@`,
so a title someone typed into a task can never run as a formula when the file is opened. (The CSV
needs a leading `'` for that; a workbook says the cell's type and needs nothing added.) Column
widths are fitted to the longest value, a Chinese character counting twice.
"""

from __future__ import annotations

import io
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE, Cell, MergedCell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

NS = 1_000_000_000
MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# text: a string; time: UTC ns; date: YYYY-MM-DD; minutes: a number of minutes; percent: a fraction 0..1; number: as is
CellKind = Literal["text", "time", "date", "minutes", "percent", "number"]


@dataclass(frozen=True)
class Typed:
    """A cell of its own kind in a column of mixed ones (a report's headline figures), with a unit
    Excel shows after the number."""

    value: int | float
    kind: CellKind
    unit: str = ""


Value = str | int | float | Typed | None
FORMATS: dict[CellKind, str] = {"time": "yyyy-mm-dd hh:mm", "date": "yyyy-mm-dd", "minutes": "0.0", "percent": "0.0%"}
MAX_WIDTH = 60
SHEET_NAME_MAX = 31  # Excel's limit
_NOT_IN_SHEET_NAMES = re.compile(r"[\[\]:*?/\\]")


@dataclass(frozen=True)
class XColumn:
    header: str
    kind: CellKind = "text"


@dataclass
class Block:
    """A header line and its rows; a row holds one value per column, None for an empty cell."""

    columns: list[XColumn]
    rows: list[list[Value]] = field(default_factory=list)


@dataclass
class Sheet:
    """One worksheet: optional lines of text above (a title, the period), then blocks, a blank line
    between them."""

    name: str
    blocks: list[Block] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


def workbook(sheets: list[Sheet], zone: ZoneInfo, title: str = "") -> bytes:
    """The sheets as an .xlsx file; times shown in `zone`."""
    book = Workbook()
    book.remove(book.active)  # type: ignore[arg-type]
    book.properties.title = title or None
    names: set[str] = set()
    for sheet in sheets:
        ws = book.create_sheet(_sheet_name(sheet.name, names))
        _fill(ws, sheet, zone)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _fill(ws: Worksheet, sheet: Sheet, zone: ZoneInfo) -> None:
    widths: dict[int, int] = {}
    row = 1
    for line in sheet.lines:
        _text(ws.cell(row, 1), line)
        widths[1] = max(widths.get(1, 0), _width(line))
        row += 1
    if sheet.lines:
        row += 1
    for i, block in enumerate(sheet.blocks):
        if i:
            row += 1
        for col, column in enumerate(block.columns, 1):
            cell = _text(ws.cell(row, col), column.header)
            cell.font = Font(bold=True)
            widths[col] = max(widths.get(col, 0), _width(column.header))
        if i == 0 and not sheet.lines and len(sheet.blocks) == 1:
            ws.freeze_panes = f"A{row + 1}"  # the header stays in view
        row += 1
        for values in block.rows:
            for col, (column, value) in enumerate(zip(block.columns, values, strict=True), 1):
                shown = _put(ws.cell(row, col), value, column.kind, zone)
                widths[col] = max(widths.get(col, 0), _width(shown))
            row += 1
    for col, width in widths.items():
        ws.column_dimensions[get_column_letter(col)].width = min(width + 2, MAX_WIDTH)


def _put(cell: Cell | MergedCell, value: Value, kind: CellKind, zone: ZoneInfo) -> str:
    """Store `value` typed by `kind`; returns it as shown, for the column's width."""
    if value is None:
        return ""
    if isinstance(value, Typed):
        shown = _put(cell, value.value, value.kind, zone)
        if value.unit:
            cell.number_format = f'{FORMATS.get(value.kind, "General")} "{value.unit}"'
        return f"{shown} {value.unit}"
    if kind == "date" and isinstance(value, str):  # a day, not a text that looks like one: Excel sorts it
        cell.value = date.fromisoformat(value)
        cell.number_format = FORMATS["date"]
        return value
    if isinstance(value, str) or kind == "text":
        _text(cell, str(value))
        return str(value)
    if kind == "time":
        cell.value = datetime.fromtimestamp(value / NS, zone).replace(tzinfo=None)
        cell.number_format = FORMATS["time"]
        return "0000-00-00 00:00"
    cell.value = value
    if kind in FORMATS:
        cell.number_format = FORMATS[kind]
    return f"{value * 100:.1f}%" if kind == "percent" else f"{value:.1f}" if kind == "minutes" else str(value)


def _text(cell: Cell | MergedCell, value: str) -> Cell | MergedCell:
    """A string cell, whatever it starts with: openpyxl would take a leading `=` for a formula.
    Control characters, which the file format cannot hold (a device's garbage in a dead letter, a
    pasted title), are written as `\\x01`, so that the report is still made and says they were there."""
    cell.value = ILLEGAL_CHARACTERS_RE.sub(lambda m: f"\\x{ord(m.group()):02x}", value)
    cell.data_type = "s"
    return cell


def _width(shown: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in shown)


def _sheet_name(wanted: str, taken: set[str]) -> str:
    """`wanted` as Excel allows a sheet name (31 characters, none of []:*?/\\), unique in the book."""
    base = _NOT_IN_SHEET_NAMES.sub(" ", wanted).strip() or "sheet"
    name, n = base[:SHEET_NAME_MAX], 1
    while name.lower() in taken:
        n += 1
        suffix = f" ({n})"
        name = base[: SHEET_NAME_MAX - len(suffix)] + suffix
    taken.add(name.lower())
    return name
