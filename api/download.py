"""A desk list as a file to save: the Excel workbook or CSV file of a list report (reports.lists),
named for what it lists, its site and when it was made, in the language asked for."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import Query, Response

import reports

ListFormat = Literal["xlsx", "csv"]
ListFormatQuery = Annotated[ListFormat, Query(alias="format", description="xlsx (Excel) or csv")]
ListLangQuery = Annotated[reports.Lang, Query(description="zh or en: the language of headers and words")]
# The answers of an export route, for its OpenAPI document.
LIST_FILE: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            reports.MEDIA_TYPES[fmt]: {"schema": {"type": "string", "format": "binary"}} for fmt in ("xlsx", "csv")
        },
        "description": "the file, to save",
    }
}


def list_file(report: reports.Report, fmt: ListFormat, lang: reports.Lang) -> Response:
    """The report rendered as `fmt`, as an attachment: a browser saves it rather than shows it."""
    made = datetime.fromtimestamp(report.generated_at / 1e9, ZoneInfo(report.timezone)).strftime("%Y-%m-%d-%H%M")
    name = f"{report.kind}-{report.site}-{made}-{lang}.{fmt}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    return Response(reports.render(report, fmt, lang), media_type=reports.MEDIA_TYPES[fmt], headers=headers)
