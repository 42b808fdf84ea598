"""A report in the format asked for: HTML to print, Markdown to paste, CSV for a spreadsheet, JSON
(the report's data: raw values, UTC ns, both languages) for programs."""

from __future__ import annotations

import json
from typing import Literal

from reports.csvfile import render_csv
from reports.html import render_html
from reports.markdown import render_markdown
from reports.model import Report
from reports.values import Lang

Format = Literal["html", "md", "csv", "json"]
FORMATS: tuple[Format, ...] = ("html", "md", "csv", "json")
MEDIA_TYPES: dict[Format, str] = {
    "html": "text/html; charset=utf-8",
    "md": "text/markdown; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
}


def render(report: Report, fmt: Format, lang: Lang) -> str:
    """The report as text; JSON holds both languages whatever `lang` says."""
    if fmt == "html":
        return render_html(report, lang)
    if fmt == "md":
        return render_markdown(report, lang)
    if fmt == "csv":
        return render_csv(report, lang)
    if fmt == "json":
        return json.dumps(report.as_dict(), ensure_ascii=False, indent=1)
    raise ValueError(f"format: {fmt!r} is not one of {', '.join(FORMATS)}")
