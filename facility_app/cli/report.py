"""`facility report ...`: the morning briefing, the shift handover and the monthly report,
built from the ops store and printed or written to a file."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast
from zoneinfo import ZoneInfo

import typer
from rich.console import Console

from facility.errors import Invalid
from facility.model import now_ns
from facility.site import Site
from facility.store.ops import OpsStore
from facility.yamlfile import ConfigError
from facility_app.cli.options import DEMO_DATA_HINT, DEMO_SITE, DataOption, emit, load, ops_place, with_ops
from rules.ruleset import load_rules
from rules.schedules import load_schedules

if TYPE_CHECKING:
    from reports import Format, Lang

# `reports` is imported inside the commands: it loads openpyxl (for XLSX), a quarter of a second
# at every start of every other command, --help included.

app = typer.Typer(
    help="Reports: the morning briefing, the shift handover and the monthly report.", no_args_is_help=True
)
ReportSite = Annotated[Path, typer.Option("--site", "-c", help="site file (its ops store holds what reports read)")]
ReportFormat = Annotated[str, typer.Option("--format", help="md, html, csv, json or xlsx (with --out)")]
ReportLang = Annotated[str, typer.Option("--lang", help="zh or en")]
ReportOut = Annotated[Path | None, typer.Option("--out", help="write to this file (default: print)")]


def _report(
    site: Path,
    data: Path | None,
    fmt: str,
    lang: str,
    out: Path | None,
    make: Callable[[Site, OpsStore], Awaitable[Any]],
) -> None:
    """Build a report on the site's ops store (or the --data folder's) and print or write it."""
    from reports import BINARY_FORMATS, FORMATS, render  # see the note at the imports

    if fmt not in FORMATS:
        raise typer.BadParameter(f"{fmt!r} is not one of {', '.join(FORMATS)}", param_hint="--format")
    if fmt in BINARY_FORMATS and out is None:
        raise typer.BadParameter(f"{fmt} is a file, not for a terminal: give --out FILE.{fmt}", param_hint="--format")
    if lang not in ("zh", "en"):
        raise typer.BadParameter(f"{lang!r} is not zh or en", param_hint="--lang")
    loaded = load(site)
    where, absent = ops_place(loaded, data)

    async def build(ops: OpsStore) -> tuple[Any, bool]:
        return await make(loaded, ops), not await ops.alarms.list_alarms(include_closed=True, limit=1)

    try:  # a month over a large store takes a while: a spinner on stderr (on a terminal only)
        with Console(stderr=True).status(f"building the report from {where}"):
            report, empty = asyncio.run(with_ops(loaded, data, build))
        text = render(report, cast("Format", fmt), cast("Lang", lang))
    except ConfigError as exc:
        typer.echo(f"error: the site's rules or schedules cannot be used:\n{exc}", err=True)
        raise typer.Exit(2) from None
    except (RuntimeError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if absent or empty:  # an all-zero report is then no news: say where it looked
        found = "there was no ops store" if absent else "the ops store holds no alarm"
        hint = DEMO_DATA_HINT if data is None else " (is it the folder of `facility demo --data`?)"
        typer.echo(f"note: {found} at {where}, so the report is empty{hint}", err=True)
    emit(text, out)


@app.command("briefing")
def report_briefing(
    day: Annotated[
        str | None,
        typer.Option("--date", help="YYYY-MM-DD, a local calendar day (default: since yesterday's 08:00 up to now)"),
    ] = None,
    fmt: ReportFormat = "md",
    lang: ReportLang = "zh",
    out: ReportOut = None,
    site: ReportSite = DEMO_SITE,
    data: DataOption = None,
) -> None:
    """The morning briefing (晨会简报): last night's alarms, emergencies and tasks (or a --date's),
    and what today starts with."""
    from reports import briefing  # see the note at the imports

    try:
        chosen = date.fromisoformat(day) if day else None
    except ValueError:
        raise typer.BadParameter(f"{day!r} is not a date; write YYYY-MM-DD", param_hint="--date") from None

    async def make(loaded: Site, ops: OpsStore) -> Any:
        return await briefing(
            loaded, ops, chosen, now=now_ns(), rules=load_rules(loaded), schedules=load_schedules(loaded)
        )

    _report(site, data, fmt, lang, out, make)


@app.command("handover")
def report_handover(
    since: Annotated[
        str | None,
        typer.Option(help="ISO 8601, site time zone unless an offset is given (default: 08:00 or 20:00 shift start)"),
    ] = None,
    fmt: ReportFormat = "md",
    lang: ReportLang = "zh",
    out: ReportOut = None,
    site: ReportSite = DEMO_SITE,
    data: DataOption = None,
) -> None:
    """The shift handover: what happened since the shift began, and what is still open."""
    from reports import handover  # see the note at the imports

    try:
        moment = datetime.fromisoformat(since) if since else None
    except ValueError:
        raise typer.BadParameter(
            f"{since!r} is not a time; write e.g. 2026-11-28T08:00", param_hint="--since"
        ) from None

    async def make(loaded: Site, ops: OpsStore) -> Any:
        start = None
        if moment is not None:
            local = moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(loaded.site.timezone))
            start = int(local.timestamp() * 1e6) * 1000
        try:
            return await handover(loaded, ops, start, now_ns())
        except Invalid as exc:  # "since: ..." after now
            raise typer.BadParameter(str(exc).partition(": ")[2], param_hint="--since") from None

    _report(site, data, fmt, lang, out, make)


@app.command("monthly")
def report_monthly(
    month: Annotated[str | None, typer.Option(help="YYYY-MM (default: last month)")] = None,
    fmt: ReportFormat = "md",
    lang: ReportLang = "zh",
    out: ReportOut = None,
    site: ReportSite = DEMO_SITE,
    data: DataOption = None,
) -> None:
    """The monthly report: acknowledge and repair times, deadlines kept, alarm load, availability."""
    from reports import monthly  # see the note at the imports

    if month is not None and not re.fullmatch(r"\d{4}-\d{2}", month):
        raise typer.BadParameter(f"{month!r} is not a month; write YYYY-MM", param_hint="--month")

    async def make(loaded: Site, ops: OpsStore) -> Any:
        now = now_ns()
        if month is None:
            last = datetime.now(ZoneInfo(loaded.site.timezone)).date().replace(day=1) - timedelta(days=1)
            year, number = last.year, last.month
        else:
            year, number = int(month[:4]), int(month[5:])
        try:
            return await monthly(loaded, ops, year, number, now=now, rules=load_rules(loaded))
        except Invalid as exc:  # "month: ..." not a month, or not begun
            raise typer.BadParameter(str(exc).partition(": ")[2], param_hint="--month") from None

    _report(site, data, fmt, lang, out, make)
