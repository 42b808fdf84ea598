"""Reports: the morning briefing, the shift handover and the monthly report, as JSON (the report's
data) or rendered as HTML, Markdown, CSV or an Excel workbook in Chinese or English; CSV and Excel
come as a download named for the report, its site and its start. A user limited to buildings gets
the report of their buildings."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Response

import reports
from api.context import ApiContext
from api.deps import Ctx, Viewer
from facility.errors import Invalid
from facility.model import now_ns
from reports.periods import local_date

FormatQuery = Annotated[reports.Format, Query(alias="format", description="json (the data), html, md, csv or xlsx")]
DOWNLOADS = ("csv", "xlsx")  # files for a spreadsheet: saved, not shown
FIRST_YEAR, LAST_YEAR = 1970, 2261  # the times the stores can hold (UTC ns in 64 bits)
LangQuery = Annotated[reports.Lang, Query(description="zh or en (JSON carries both)")]


def rendered(ctx: ApiContext, report: reports.Report, fmt: reports.Format, lang: reports.Lang) -> Response:
    """The report in `fmt`; a file for a spreadsheet comes as a download named for the report,
    its site and its start (in site time)."""
    headers = {}
    if fmt in DOWNLOADS:
        zone = ZoneInfo(ctx.site.site.timezone)
        start = datetime.fromtimestamp(report.start / 1e9, zone).strftime("%Y-%m-%d-%H%M")
        name = f"{report.kind}-{report.site}-{start}-{lang}.{fmt}"
        headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return Response(reports.render(report, fmt, lang), media_type=reports.MEDIA_TYPES[fmt], headers=headers)


def year_of(value: int, field: str, what: str) -> int:
    """`value`, a year the stores can hold; else a 422 naming the query parameter `field`."""
    if not FIRST_YEAR <= value <= LAST_YEAR:
        raise Invalid(f"{what} between {FIRST_YEAR} and {LAST_YEAR}", field=field, where="query")
    return value


router = APIRouter(tags=["reports"])


@router.get("/reports/briefing")
async def briefing(
    ctx: Ctx,
    user: Viewer,
    day: Annotated[
        date | None,
        Query(alias="date", description="YYYY-MM-DD, a local day; default: since yesterday's 08:00 up to now"),
    ] = None,
    fmt: FormatQuery = "json",
    lang: LangQuery = "zh",
) -> Response:
    """The morning briefing: the alarms, emergencies and tasks since yesterday's morning meeting
    (or of a local day), and what today starts with (overdue tasks, devices offline or out of
    service, rounds, tasks due)."""
    now = now_ns()
    if day is not None:
        year_of(day.year, "date", "a day")
    report = await reports.briefing(
        ctx.site,
        ctx.ops,
        day,
        ctx.visible(user),
        now=now,
        rules=ctx.rules.running.rules,
        schedules=ctx.rules.running.schedules,
    )
    return rendered(ctx, report, fmt, lang)


@router.get("/reports/handover")
async def handover(
    ctx: Ctx,
    user: Viewer,
    since: Annotated[
        datetime | None, Query(description="ISO 8601; default: the start of the shift, 08:00 or 20:00 local")
    ] = None,
    fmt: FormatQuery = "json",
    lang: LangQuery = "zh",
) -> Response:
    """What happened since the shift began, and what is still open."""
    since_ns = None if since is None else ctx.ns_of(since, "since")
    report = await reports.handover(ctx.site, ctx.ops, since_ns, now_ns(), ctx.visible(user))  # Invalid: since > now
    return rendered(ctx, report, fmt, lang)


@router.get("/reports/monthly")
async def monthly(
    ctx: Ctx,
    user: Viewer,
    month: Annotated[
        str | None, Query(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM; default: the month before this one")
    ] = None,
    fmt: FormatQuery = "json",
    lang: LangQuery = "zh",
) -> Response:
    """Acknowledge and repair times, deadlines kept by teams and vendors, the alarm load against
    ISA-18.2 and EEMUA 191, the most frequent alarms and device availability of a local month."""
    now = now_ns()
    if month is None:
        last = local_date(now, ZoneInfo(ctx.site.site.timezone)).replace(day=1) - timedelta(days=1)
        year, number = last.year, last.month
    else:
        year, number = year_of(int(month[:4]), "month", "a month"), int(month[5:])
    report = await reports.monthly(  # Invalid for a month that is not one, or has not begun
        ctx.site, ctx.ops, year, number, ctx.visible(user), now=now, rules=ctx.rules.running.rules
    )
    return rendered(ctx, report, fmt, lang)
