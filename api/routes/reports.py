"""Reports: the morning briefing, the shift handover and the monthly report, as JSON (the report's
data) or rendered as HTML, Markdown, CSV or an Excel workbook in Chinese or English; CSV and Excel
come as a download named for the report, its site and its start. A user limited to buildings gets
the report of their buildings."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Response

import reports
from api.auth import Role, TokenAuth, User
from api.body import query_error
from api.context import ApiContext
from facility.model import now_ns
from reports.periods import local_date

FormatQuery = Annotated[reports.Format, Query(alias="format", description="json (the data), html, md, csv or xlsx")]
DOWNLOADS = ("csv", "xlsx")  # files for a spreadsheet: saved, not shown
FIRST_YEAR, LAST_YEAR = 1970, 2261  # the times the stores can hold (UTC ns in 64 bits)
LangQuery = Annotated[reports.Lang, Query(description="zh or en (JSON carries both)")]


def router(ctx: ApiContext, auth: TokenAuth) -> APIRouter:
    r = APIRouter(tags=["reports"])
    zone = ZoneInfo(ctx.site.site.timezone)

    def rendered(report: reports.Report, fmt: reports.Format, lang: reports.Lang) -> Response:
        headers = {}
        if fmt in DOWNLOADS:
            start = datetime.fromtimestamp(report.start / 1e9, zone).strftime("%Y-%m-%d-%H%M")
            name = f"{report.kind}-{report.site}-{start}-{lang}.{fmt}"
            headers["Content-Disposition"] = f'attachment; filename="{name}"'
        return Response(reports.render(report, fmt, lang), media_type=reports.MEDIA_TYPES[fmt], headers=headers)

    @r.get("/reports/briefing")
    async def briefing(
        user: User = Depends(auth.require(Role.VIEWER)),
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
        if day is not None and not FIRST_YEAR <= day.year <= LAST_YEAR:
            raise query_error("date", f"a day between {FIRST_YEAR} and {LAST_YEAR}")
        report = await reports.briefing(
            ctx.site,
            ctx.ops,
            day,
            ctx.visible(user),
            now=now,
            rules=ctx.rules.rules,
            schedules=ctx.rules.scheduler.schedules,
        )
        return rendered(report, fmt, lang)

    @r.get("/reports/handover")
    async def handover(
        user: User = Depends(auth.require(Role.VIEWER)),
        since: Annotated[
            datetime | None, Query(description="ISO 8601; default: the start of the shift, 08:00 or 20:00 local")
        ] = None,
        fmt: FormatQuery = "json",
        lang: LangQuery = "zh",
    ) -> Response:
        """What happened since the shift began, and what is still open."""
        try:
            report = await reports.handover(
                ctx.site, ctx.ops, None if since is None else ctx.ns_of(since, "since"), now_ns(), ctx.visible(user)
            )
        except ValueError as exc:  # "since: ..."
            raise query_error("since", str(exc).partition(": ")[2]) from None
        return rendered(report, fmt, lang)

    @r.get("/reports/monthly")
    async def monthly(
        user: User = Depends(auth.require(Role.VIEWER)),
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
            last = local_date(now, zone).replace(day=1) - timedelta(days=1)
            year, number = last.year, last.month
        else:
            year, number = int(month[:4]), int(month[5:])
            if not FIRST_YEAR <= year <= LAST_YEAR:
                raise query_error("month", f"a month between {FIRST_YEAR} and {LAST_YEAR}")
        try:
            report = await reports.monthly(
                ctx.site, ctx.ops, year, number, ctx.visible(user), now=now, rules=ctx.rules.rules
            )
        except ValueError as exc:  # "month: ..."
            raise query_error("month", str(exc).partition(": ")[2]) from None
        return rendered(report, fmt, lang)

    return r
