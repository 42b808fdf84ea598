"""`facility rules ...`: the engineer's tools for rule files, run before a rule goes live."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.progress import Progress

from facility.duration import parse_duration
from facility.model import now_ns
from facility.site import Site
from facility.store.telemetry import StoreUnavailable, TelemetryStore
from facility.yamlfile import ConfigError
from facility_app.cli.options import DEMO_DATA_HINT, DEMO_SITE, Command, counted, load, parsed
from rules.backtest import backtest, parse_time, reads_count, report
from rules.ruleset import load_rules
from rules.testing import load_suite, rule_files, run_case

app = typer.Typer(help="Rule tools for engineers: check, test and backtest rule files.", no_args_is_help=True)
SiteOption = Annotated[Path, typer.Option("--site", "-c", help="site file the rules are bound to")]


@app.command("check", cls=Command)
def rules_check(
    paths: Annotated[list[Path], typer.Argument(help="rule files or folders of them")],
    site: SiteOption = DEMO_SITE,
) -> None:
    """Validate rule files against a site; every problem is printed as file:line: field: message."""
    loaded = load(site)
    problems = [
        f"{p}: no rule files (*.yaml) in this folder" for p in paths if p.is_dir() and not any(p.glob("*.yaml"))
    ]
    files = rule_files(paths)
    try:
        rules = load_rules(loaded, files)
    except ConfigError as exc:
        problems += [str(p) for p in exc.problems]
    if problems:
        typer.echo("\n".join(problems))
        raise typer.Exit(1)
    for rule in rules:
        if not rule.devices:
            typer.echo(f"warning: {rule.source}: devices: rule {rule.id} matches no device of {site}", err=True)
        for warning in rule.warnings:
            typer.echo(f"warning: {warning}", err=True)
    bound = {d for rule in rules for d in rule.devices}
    conditions = sum(len(rule.devices) for rule in rules)
    summary = (
        f"{counted(len(rules), 'rule')} in {counted(len(files), 'file')}:"
        f" {counted(conditions, 'condition')} on {counted(len(bound), 'device')}: OK"
    )
    typer.echo(summary)


@app.command("test", cls=Command)
def rules_test(files: Annotated[list[Path], typer.Argument(help="rule test files (YAML)")]) -> None:
    """Run rule unit tests: input series per point, and what must be active when."""
    passed = failed = 0
    for path in files:
        typer.echo(str(path))
        try:
            suite = load_suite(path)
        except ConfigError as exc:
            typer.echo(f"  ERROR  the test file cannot be used:\n{exc}")
            failed += 1
            continue
        for case in suite.cases:
            mismatches = run_case(suite.rules, case)
            typer.echo(f"  {'FAIL' if mismatches else 'PASS'}  {case.name}")
            for mismatch in mismatches:
                typer.echo("\n".join("        " + line for line in str(mismatch).splitlines()))
            failed += bool(mismatches)
            passed += not mismatches
    typer.echo(f"{passed} passed, {failed} failed")
    if failed:
        raise typer.Exit(1)


@app.command("backtest")
def rules_backtest(
    start: Annotated[str, typer.Option("--from", help="ISO 8601 (site time zone unless an offset is given) or -7d")],
    end: Annotated[str, typer.Option("--to", help="ISO 8601, or relative: now, -1h")] = "now",
    site: SiteOption = DEMO_SITE,
    rules: Annotated[
        list[Path] | None,
        typer.Option("--rules", metavar="PATH", help="rule files or folders, repeated (default: the site's rules)"),
    ] = None,
    step: Annotated[str, typer.Option(help="engine tick: raise times are exact to this")] = "1m",
    data: Annotated[
        Path | None, typer.Option(help="the data folder of `facility demo --data` (its telemetry.db) instead")
    ] = None,
) -> None:
    """Replay the site's stored telemetry (or a --data folder's) through a rule set: what would have
    fired, when, how long."""
    loaded = load(site)
    zone = ZoneInfo(loaded.site.timezone)
    now = now_ns()
    start_ns = parsed(lambda: parse_time(start, zone, now), "--from")
    end_ns = parsed(lambda: parse_time(end, zone, now), "--to")
    step_ns = parsed(lambda: int(parse_duration(step) * 1e9), "--step")
    if start_ns >= end_ns:
        raise typer.BadParameter(f"{start} is not before --to {end}", param_hint="--from")
    if step_ns <= 0:
        raise typer.BadParameter("must be longer than 0", param_hint="--step")
    try:
        rule_set = load_rules(loaded, rule_files(rules) if rules else None)
    except ConfigError as exc:
        typer.echo(f"error: the rules cannot be used:\n{exc}", err=True)
        raise typer.Exit(2) from None
    store = _history(loaded, data)
    try:
        with Progress(console=Console(stderr=True), transient=True) as progress:
            bar = progress.add_task("reading history", total=reads_count(rule_set, start_ns, end_ns))
            episodes = backtest(rule_set, store, start_ns, end_ns, step_ns, lambda: progress.advance(bar))
    except (StoreUnavailable, OSError) as exc:
        typer.echo(f"error: cannot read the telemetry store: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        store.close()
    typer.echo(report(episodes, rule_set, start_ns, end_ns, zone))


def _history(site: Site, data: Path | None) -> TelemetryStore:
    """The telemetry store a backtest reads: the site's, or the one `facility demo --data` writes;
    a SQLite file that is not there is an error, not a new empty store."""
    # Imported here: the store factory loads the InfluxDB client, a fifth of a second at every
    # start of every command (--help included) for this one.
    from facility.store.factory import open_telemetry

    stores, base = site.stores, site.path(".")
    if data is not None and isinstance(stores.telemetry, str):  # where `facility demo --data` writes it
        stores, base = stores.model_copy(update={"telemetry": "telemetry.db"}), data
    if isinstance(stores.telemetry, str) and not (where := base / stores.telemetry).exists():
        typer.echo(f"error: no telemetry store at {where}{DEMO_DATA_HINT if data is None else ''}", err=True)
        raise typer.Exit(2)
    return open_telemetry(stores, base, site.site.id)
