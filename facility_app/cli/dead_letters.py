"""`facility dead-letters`: the input the system could not use, read from the ops store."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated, get_args
from zoneinfo import ZoneInfo

import typer

from facility.model import now_ns
from facility.store.dead_letters import LetterFilter, LetterKeys, Source, StoredLetter, letter_page
from facility_app.cli.options import DEMO_DATA_HINT, DEMO_SITE, DataOption, load, ops_place, parsed, with_ops
from rules.backtest import parse_time

LettersSite = Annotated[Path, typer.Option("--site", "-c", help="site file (its ops store keeps the dead letters)")]
_LETTER_WIDTHS = {"key": 40, "reason": 60, "payload": 60}  # a table row stays on one line of a wide terminal


def dead_letters(
    site: LettersSite = DEMO_SITE,
    data: DataOption = None,
    since: Annotated[
        str | None, typer.Option(help="only those met from: ISO 8601 (site time zone unless an offset is given) or -1h")
    ] = None,
    source: Annotated[
        list[str] | None,
        typer.Option(metavar="SOURCE", help="only from mqtt, modbus, telemetry or webhook (repeat for more)"),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="at most this many, newest first")] = 100,
    as_json: Annotated[
        bool, typer.Option("--json", help="one JSON object a line, as GET /api/v1/dead-letters")
    ] = False,
) -> None:
    """The input the system could not use (bad MQTT payloads, Modbus values that do not decode, ...),
    newest first: when, from where, why, and what came."""
    # Imported here: the API's answer shape pulls in the web stack, which would slow every command.
    from api.routes.dead_letters import answer_of

    known = get_args(Source)
    for named in source or ():
        if named not in known:
            raise typer.BadParameter(f"{named!r} is not one of {', '.join(known)}", param_hint="--source")
    loaded = load(site)
    zone = ZoneInfo(loaded.site.timezone)
    start = None if since is None else parsed(lambda: parse_time(since, zone, now_ns()), "--since")
    where, absent = ops_place(loaded, data)
    if absent:  # reading must not make an empty store where the user mistyped a folder
        hint = DEMO_DATA_HINT if data is None else " (is it the folder of `facility demo --data`?)"
        typer.echo(f"note: there is no ops store at {where}, so no dead letters{hint}", err=True)
        return
    chosen = LetterFilter(sources=source or (), since=start)
    try:
        letters, total = asyncio.run(with_ops(loaded, data, lambda ops: letter_page(ops, chosen, limit, 0)))
    except OSError as exc:  # OpsUnavailable: a PostgreSQL server that does not answer
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        keys = LetterKeys(loaded)
        for d in letters:
            typer.echo(answer_of(d, keys).model_dump_json())
    elif letters:
        typer.echo("\n".join(_letter_table(letters, zone)))
    if total > len(letters):
        typer.echo(f"{len(letters)} of {total} dead letters shown, newest first; --limit shows more", err=True)
    elif not letters:
        typer.echo(f"no dead letters{' matching' if source or since else ''} in the ops store at {where}", err=True)


def _one_line(text: str, width: int) -> str:
    """`text` on one line (line breaks and tabs as spaces) and at most `width` characters, its cut
    shown by `…`: a payload may be kilobytes of JSON across many lines. What came from a device
    may hold control characters (a terminal's escape sequences): they are shown escaped, `\\x1b`."""
    flat = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in " ".join(text.split()))
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _letter_table(letters: Sequence[StoredLetter], zone: ZoneInfo) -> list[str]:
    """Dead letters as the lines of a table: time in the site's zone, source, key, reason, payload."""
    rows = [("time", "source", "key", "reason", "payload")]
    for d in letters:
        shown = datetime.fromtimestamp(d.ts / 1e9, zone).strftime("%Y-%m-%d %H:%M:%S")
        cut = {name: _one_line(getattr(d, name), width) for name, width in _LETTER_WIDTHS.items()}
        rows.append((shown, d.source, cut["key"], cut["reason"], cut["payload"]))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return ["  ".join([*(c.ljust(w) for c, w in zip(row[:4], widths, strict=True)), row[4]]).rstrip() for row in rows]
