"""A report in the format asked for: HTML to print, Markdown to paste, CSV or an Excel workbook for
a spreadsheet, JSON (the report's data: raw values, UTC ns, both languages) for programs. The
workbook is bytes; every other format is text."""

from __future__ import annotations

import json
from typing import Literal, overload

from reports import xlsx
from reports.csvfile import render_csv
from reports.html import render_html
from reports.markdown import render_markdown
from reports.model import Report
from reports.values import Lang
from reports.xlsxfile import render_xlsx

TextFormat = Literal["html", "md", "csv", "json"]
Format = Literal["html", "md", "csv", "json", "xlsx"]
FORMATS: tuple[Format, ...] = ("html", "md", "csv", "json", "xlsx")
BINARY_FORMATS: frozenset[Format] = frozenset({"xlsx"})  # not for a terminal
MEDIA_TYPES: dict[Format, str] = {
    "html": "text/html; charset=utf-8",
    "md": "text/markdown; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "xlsx": xlsx.MEDIA_TYPE,
}


@overload
def render(report: Report, fmt: TextFormat, lang: Lang) -> str: ...
@overload
def render(report: Report, fmt: Literal["xlsx"], lang: Lang) -> bytes: ...
@overload
def render(report: Report, fmt: Format, lang: Lang) -> str | bytes: ...
def render(report: Report, fmt: Format, lang: Lang) -> str | bytes:
    """The report as text, or as bytes for xlsx; JSON holds both languages whatever `lang` says."""
    if fmt == "html":
        return render_html(report, lang)
    if fmt == "md":
        return render_markdown(report, lang)
    if fmt == "csv":
        return render_csv(report, lang)
    if fmt == "json":
        return json.dumps(report.as_dict(), ensure_ascii=False, indent=1)
    if fmt == "xlsx":
        return render_xlsx(report, lang)
    raise ValueError(f"format: {fmt!r} is not one of {', '.join(FORMATS)}")
