"""The `facility` command."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import sys
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar
from zoneinfo import ZoneInfo

import typer
from typer.core import TyperArgument, TyperCommand

from facility.placeholders import is_placeholder, placeholder_variables
from facility.site import Site, load_site, replicate
from facility.store.ops import OpsStore
from facility.store.users import Role, UserStore
from facility.yamlfile import ConfigError

if TYPE_CHECKING:
    from facility.store.dead_letters import StoredLetter

T = TypeVar("T")

app = typer.Typer(
    help="Facility monitoring: gateway, rules, duty desk and simulators.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
sim_app = typer.Typer(help="Simulated plant: run it, list its devices, inject and clear faults.", no_args_is_help=True)
app.add_typer(sim_app, name="sim")
rules_app = typer.Typer(help="Rule tools for engineers: check, test and backtest rule files.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")
users_app = typer.Typer(help="Users of the desk and the API, each with a role and a token.", no_args_is_help=True)
app.add_typer(users_app, name="users")


class _ManyValuedArgument(TyperArgument):
    """A many-valued argument shown in --help by its name alone (`PATH...`): typer adds its
    Python type, `<list[Path]>`, which tells a user nothing (and ignores `metavar=`)."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None


class _Command(TyperCommand):
    """A command whose many-valued arguments are shown as `_ManyValuedArgument`s."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if isinstance(param, TyperArgument) and param.nargs != 1:
                param.__class__ = _ManyValuedArgument


DEMO_SITE = Path("sites/demo/site.yaml")
_DEMO_DATA_HINT = " (`facility demo` keeps its data in var/demo: add --data var/demo)"  # where a newcomer looks
ScaleOption = Annotated[int, typer.Option(min=1, help="replicate the estate N times (benchmarks)")]
VerboseOption = Annotated[
    bool, typer.Option("--verbose", "-v", help="log debug detail, and the MQTT and Modbus libraries' warnings")
]
TokenFileOption = Annotated[
    Path | None,
    typer.Option(
        "--token-file",
        envvar="FACILITY_TOKEN_FILE",
        help="file holding the admin token this server accepts; or set FACILITY_TOKEN"
        " (never on the command line, where ps shows it)",
    ),
]
# The client commands (`facility sim devices|fault|...`) send a token; the servers serve with one.
SendTokenFileOption = Annotated[
    Path | None,
    typer.Option(
        "--token-file",
        envvar="FACILITY_TOKEN_FILE",
        help="file holding the token to send to the demo or `sim run` (`facility demo` prints its"
        " FACILITY_TOKEN_FILE); or set FACILITY_TOKEN",
    ),
]
MIN_TOKEN_LENGTH = 32
MIN_TOKEN_SYMBOLS = (
    10  # distinct characters: a random token of 32 has some 20 or more; "aaaa..." or "abab..." is no secret
)


def token_problem(token: str) -> str | None:
    """Why a token given for the admin is no good, or None. It opens every action of the site."""
    if len(token) < MIN_TOKEN_LENGTH:
        return f"it has {len(token)} characters; give at least {MIN_TOKEN_LENGTH}"
    if len(set(token)) < MIN_TOKEN_SYMBOLS:
        return f"it uses only {len(set(token))} different characters; give a random one"
    if any(ch.isspace() or not ch.isprintable() for ch in token):
        return "it holds spaces or control characters"
    return None


def _given_token(token_file: Path | None) -> str | None:
    """The token given in the file (`--token-file`, FACILITY_TOKEN_FILE) or in FACILITY_TOKEN."""
    if token_file is not None:
        try:
            return token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            typer.echo(f"error: cannot read the token file {token_file}: {exc}", err=True)
            raise typer.Exit(2) from None
    return os.environ.get("FACILITY_TOKEN") or None


def _admin_token(token_file: Path | None) -> str | None:
    """The admin token a server is given, refused when weak; None when none is given. Every server
    asks for it before it starts, so this is also where a start is refused while any variable of
    the environment still holds a placeholder of deploy/env.example (named, never shown)."""
    if names := placeholder_variables(os.environ):
        typer.echo(
            f"error: {', '.join(names)} still hold the placeholder of deploy/env.example; set each to a"
            " secret of your own (e.g. `openssl rand -hex 32`)",
            err=True,
        )
        raise typer.Exit(2)
    token = _given_token(token_file)
    if token is not None and is_placeholder(token):
        typer.echo(f"error: the admin token in {token_file} is the placeholder of deploy/env.example", err=True)
        raise typer.Exit(2)
    if token is not None and (problem := token_problem(token)):
        source = str(token_file) if token_file is not None else "FACILITY_TOKEN"
        typer.echo(
            f"error: the admin token from {source} is too weak: {problem} (e.g. `openssl rand -hex 32`)", err=True
        )
        raise typer.Exit(2)
    return token


def _demo_token(data: Path) -> tuple[str, Path]:
    """The demo's own admin token and its file, `<data>/token`: made on first start and read after,
    so that a restart leaves an open desk (and the other terminal's FACILITY_TOKEN_FILE) signed in.
    Created 0600 in one step (O_EXCL), so it is never readable by others, not even for a moment."""
    path = data / "token"
    try:
        data.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        token = _given_token(path) or ""
        if problem := token_problem(token):
            typer.echo(
                f"error: the demo's token file {path} cannot be used: {problem}; remove it for a new one", err=True
            )
            raise typer.Exit(2) from None
        return token, path
    except OSError as exc:
        typer.echo(f"error: cannot keep the demo's token in {path}: {exc}", err=True)
        raise typer.Exit(2) from None
    token = secrets.token_urlsafe(32)  # 43 characters
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(token + "\n")
    return token, path


def _emit(document: str | bytes, out: Path | None) -> None:
    """A command's document, to the file asked for or else to stdout (text only: a caller refuses a
    binary format without a file before building it)."""
    if isinstance(document, bytes):
        assert out is not None, "a binary document needs --out"
        out.write_bytes(document)
    elif out is None:
        typer.echo(document, nl=False)
    else:
        out.write_text(document, encoding="utf-8")


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    for noisy in ("amqtt", "transitions", "pymodbus"):
        logging.getLogger(noisy).setLevel(logging.WARNING if verbose else logging.ERROR)


def _load(path: Path, scale: int = 1) -> Site:
    try:
        return replicate(load_site(path), scale)
    except ConfigError as exc:
        typer.echo(f"error: the site file cannot be used:\n{exc}", err=True)
        raise typer.Exit(2) from None
    except ValueError as exc:
        typer.echo(f"error: cannot replicate the estate {scale} times: {exc}", err=True)
        raise typer.Exit(2) from None


def _serve(site: Site, options: Any, banner: bool, login: str | None = None, token_file: Path | None = None) -> None:
    """Serve until stopped. `login` is shown only for a token the process made itself (the
    demo's): a token given to it is the operator's, and stays out of every output. The banner
    ends with the `export` lines that point `facility sim ...` in another terminal at this
    server: its URL (the port may be any) and the file of the token, never the token itself."""
    from facility_app.runtime import serve  # imported here so that `facility sim fault` stays quick

    def ready(url: str, running: Site) -> None:
        lines = [f"Duty desk:  {url}/" + (f"#token={login}" if login else ""), f"API:        {url}/api/docs"]
        if login:
            lines.insert(1, f"Login token: {login}")
        if banner:
            lines.append(f"Simulators: {url}/sim/devices  (facility sim fault DEVICE FAULT --url {url})")
            lines += [f"  {d.id:<18} {d.type:<14} {_binding(d)}" for d in running.devices]
            lines.append("In another terminal, for `facility sim ...`:")
            lines.append(f"  export FACILITY_URL={url}")
            if token_file is not None:
                lines.append(f"  export FACILITY_TOKEN_FILE={token_file.absolute()}")
        lines.append("Ctrl-C stops.")
        typer.echo("\n".join(lines), err=False)
        sys.stdout.flush()

    try:
        asyncio.run(serve(site, options, ready))
    except KeyboardInterrupt:
        pass
    except (ConfigError, RuntimeError, OSError) as exc:
        typer.echo(f"error: {exc or type(exc).__name__}", err=True)  # some (ProcessLookupError) say nothing
        raise typer.Exit(1) from None


def _binding(device: Any) -> str:
    if device.modbus:
        kind = "rtu" if device.modbus.serial else "tcp"
        return f"modbus {kind} {device.modbus.endpoint} unit {device.modbus.unit}"
    return f"mqtt {device.mqtt.topic}"


@app.command()
def demo(
    site: Annotated[Path, typer.Option("--site", "-c", help="site file")] = DEMO_SITE,
    port: Annotated[int, typer.Option(help="HTTP port of the desk and API (0: any free port)")] = 8000,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    token_file: TokenFileOption = None,
    mqtt: Annotated[
        str | None, typer.Option(help="use this broker (mqtt://HOST:PORT) instead of an embedded one")
    ] = None,
    data: Annotated[Path, typer.Option(help="folder for the demo's stores and its token")] = Path("var/demo"),
    scale: ScaleOption = 1,
    verbose: VerboseOption = False,
) -> None:
    """Run the whole system with simulated plant: broker, simulators, gateway, rules, API and desk.
    The admin token is FACILITY_TOKEN or the --token-file's, else the demo's own, made once and
    kept in DATA/token (printed)."""
    from facility_app.runtime import Options, with_local_endpoints

    _logging(verbose)
    if token_file is not None and token_file.resolve() == (data / "token").resolve():
        token_file = None  # the demo's own, exported by its banner into this shell: not an operator's
    given = _admin_token(token_file)
    loaded = _load(site, scale)
    if mqtt:
        loaded = with_local_endpoints(loaded, mqtt)
    token, kept = (given, token_file) if given else _demo_token(data)
    options = Options(
        host=host,
        port=port,
        tokens={token: "demo"},
        simulate=True,
        embedded_broker=mqtt is None,
        local_endpoints=True,
        data_dir=data,
    )
    _serve(loaded, options, banner=True, login=None if given else token, token_file=kept)


@app.command()
def run(
    config: Annotated[Path, typer.Option("--config", "-c", help="site file")],
    port: Annotated[int, typer.Option(help="HTTP port of the desk and API")] = 8000,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    token_file: TokenFileOption = None,
    scale: ScaleOption = 1,
    verbose: VerboseOption = False,
) -> None:
    """Run gateway, rules and API for a site against its broker and devices. An admin token may be
    given (FACILITY_TOKEN, or --token-file); the desk's users are those of `facility users add`."""
    from facility_app.runtime import Options

    _logging(verbose)
    token = _admin_token(token_file)
    loaded = _load(config, scale)
    if token is None:
        logging.getLogger("facility").info(
            "no admin token given (FACILITY_TOKEN or --token-file): the users of `facility users add` sign in"
        )
    _serve(loaded, Options(host=host, port=port, tokens={token: "operator"} if token else {}), banner=False)


@app.command()
def check(site: Annotated[Path, typer.Argument(help="site file")]) -> None:
    """Validate a site file, its profiles, rules, plans and schedules; errors name file, line and
    field. What loads but is likely a slip (a text in one language only) is a warning on stderr."""
    from rules.plans import load_plans
    from rules.ruleset import load_rules
    from rules.schedules import load_schedules

    loaded = _load(site)
    try:
        rules = load_rules(loaded)
        plans = load_plans(loaded)
        schedules = load_schedules(loaded)
    except ConfigError as exc:
        typer.echo(f"error: the rules, plans or schedules cannot be used:\n{exc}", err=True)
        raise typer.Exit(2) from None
    warnings = [
        *loaded.warnings,
        *(w for r in rules for w in r.warnings),
        *(w for p in plans.values() for w in p.warnings),
        *(w for schedule in schedules for w in schedule.warnings),
    ]
    for warning in warnings:
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(f"{site}: {_counted(len(loaded.devices), 'device')}, {_counted(len(rules), 'rule')}: OK")


SiteOption = Annotated[Path, typer.Option("--site", "-c", help="site file the rules are bound to")]


def _counted(count: int, noun: str) -> str:
    """`1 rule`, `0 rules`, `2 rules`: an engineer reads the summary, not a template."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


@rules_app.command("check", cls=_Command)
def rules_check(
    paths: Annotated[list[Path], typer.Argument(help="rule files or folders of them")],
    site: SiteOption = DEMO_SITE,
) -> None:
    """Validate rule files against a site; every problem is printed as file:line: field: message."""
    from rules.ruleset import load_rules
    from rules.testing import rule_files

    loaded = _load(site)
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
        f"{_counted(len(rules), 'rule')} in {_counted(len(files), 'file')}:"
        f" {_counted(conditions, 'condition')} on {_counted(len(bound), 'device')}: OK"
    )
    typer.echo(summary)


@rules_app.command("test", cls=_Command)
def rules_test(files: Annotated[list[Path], typer.Argument(help="rule test files (YAML)")]) -> None:
    """Run rule unit tests: input series per point, and what must be active when."""
    from rules.testing import load_suite, run_case

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


@rules_app.command("backtest")
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
    from rich.console import Console
    from rich.progress import Progress

    from facility.duration import parse_duration
    from facility.model import now_ns
    from facility.store.factory import open_telemetry
    from facility.store.telemetry import StoreUnavailable
    from rules.backtest import backtest, parse_time, reads_count, report
    from rules.ruleset import load_rules
    from rules.testing import rule_files

    loaded = _load(site)
    zone = ZoneInfo(loaded.site.timezone)
    now = now_ns()
    start_ns = _option(lambda: parse_time(start, zone, now), "--from")
    end_ns = _option(lambda: parse_time(end, zone, now), "--to")
    step_ns = _option(lambda: int(parse_duration(step) * 1e9), "--step")
    if start_ns >= end_ns:
        raise typer.BadParameter(f"{start} is not before --to {end}", param_hint="--from")
    if step_ns <= 0:
        raise typer.BadParameter("must be longer than 0", param_hint="--step")
    try:
        rule_set = load_rules(loaded, rule_files(rules) if rules else None)
    except ConfigError as exc:
        typer.echo(f"error: the rules cannot be used:\n{exc}", err=True)
        raise typer.Exit(2) from None
    stores, base = loaded.stores, loaded.path(".")
    if data is not None and isinstance(stores.telemetry, str):  # where `facility demo --data` writes it
        stores, base = stores.model_copy(update={"telemetry": "telemetry.db"}), data
    if isinstance(stores.telemetry, str) and not (where := base / stores.telemetry).exists():
        typer.echo(f"error: no telemetry store at {where}{_DEMO_DATA_HINT if data is None else ''}", err=True)
        raise typer.Exit(2)
    store = open_telemetry(stores, base)
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


def _option(parse: Callable[[], int], name: str) -> int:
    """The parsed value of an option, or a usage error naming it."""
    try:
        return parse()
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=name) from None


def _ops_place(site: Site, data: Path | None) -> tuple[str, bool]:
    """Where a command reads the ops store (a file, or a URL without its password), and whether
    it is a SQLite file that is not there: what a newcomer must be told when a report is empty."""
    from sqlalchemy.engine import make_url

    from facility_app.runtime import ops_url

    url = make_url(ops_url(site, data))
    if url.drivername.startswith("sqlite") and url.database and url.database != ":memory:":
        return url.database, not Path(url.database).exists()
    return url.render_as_string(hide_password=True), False


UsersSite = Annotated[Path, typer.Option("--site", "-c", help="site file (its ops store holds the users)")]
DataOption = Annotated[Path | None, typer.Option(help="the data folder of `facility demo --data` instead")]


async def _with_ops(site: Site, data: Path | None, act: Callable[[OpsStore], Awaitable[T]]) -> T:
    """`act` on the site's ops store (or the one in a `--data` folder), closed afterwards."""
    from facility_app.runtime import ops_url  # the runtime imports every package: only when needed

    ops = OpsStore(ops_url(site, data))
    await ops.start()
    try:
        return await act(ops)
    finally:
        await ops.close()


async def _with_users(site: Site, data: Path | None, act: Callable[[UserStore], Awaitable[T]]) -> T:
    return await _with_ops(site, data, lambda ops: act(UserStore(ops)))


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="who: a person or a desk")],
    role: Annotated[str, typer.Option(help="viewer, duty, engineer, manager or admin")],
    building: Annotated[
        list[str] | None,
        typer.Option(metavar="BUILDING", help="limit the user to this building (repeat for more); default: all"),
    ] = None,
    site: UsersSite = DEMO_SITE,
    data: DataOption = None,
) -> None:
    """Add a user and print their token, once: only its digest is kept."""
    loaded = _load(site)
    try:
        level = Role.named(role)
        known = {d.location.building for d in loaded.devices if d.location.building}
        for b in building or ():
            if b not in known:
                raise ValueError(f"building: no building {b!r} in this site (known: {', '.join(sorted(known))})")
        token = asyncio.run(_with_users(loaded, data, lambda users: users.add(name, level, building or ())))
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{name} ({level.name.lower()}): {token}")
    typer.echo("The token is shown this once; keep it like a password.", err=True)


@users_app.command("list")
def users_list(site: UsersSite = DEMO_SITE, data: DataOption = None) -> None:
    """Every user with their role and when they were added (tokens are never shown again)."""
    loaded = _load(site)
    zone = ZoneInfo(loaded.site.timezone)
    for user, created in asyncio.run(_with_users(loaded, data, lambda users: users.all())):
        added = datetime.fromtimestamp(created / 1e9, zone).strftime("%Y-%m-%d %H:%M")
        where = ", ".join(sorted(user.buildings)) if user.buildings else "all buildings"
        typer.echo(f"{user.name}\t{user.role.name.lower()}\t{where}\tadded {added}")


@users_app.command("revoke")
def users_revoke(
    name: Annotated[str, typer.Argument(help="the user, as `facility users list` names them")],
    site: UsersSite = DEMO_SITE,
    data: DataOption = None,
) -> None:
    """Remove a user: their token stops working at once."""
    if not asyncio.run(_with_users(_load(site), data, lambda users: users.revoke(name))):
        typer.echo(f"error: no user {name!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"{name}: revoked")


LettersSite = Annotated[Path, typer.Option("--site", "-c", help="site file (its ops store keeps the dead letters)")]
_LETTER_WIDTHS = {"key": 40, "reason": 60, "payload": 60}  # a table row stays on one line of a wide terminal


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


@app.command("dead-letters")
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
    from typing import get_args

    from api.routes.dead_letters import answer_of
    from facility.model import now_ns
    from facility.store.dead_letters import LetterFilter, LetterKeys, Source, letter_page
    from rules.backtest import parse_time

    known = get_args(Source)
    for named in source or ():
        if named not in known:
            raise typer.BadParameter(f"{named!r} is not one of {', '.join(known)}", param_hint="--source")
    loaded = _load(site)
    zone = ZoneInfo(loaded.site.timezone)
    start = None if since is None else _option(lambda: parse_time(since, zone, now_ns()), "--since")
    where, absent = _ops_place(loaded, data)
    if absent:  # reading must not make an empty store where the user mistyped a folder
        hint = _DEMO_DATA_HINT if data is None else " (is it the folder of `facility demo --data`?)"
        typer.echo(f"note: there is no ops store at {where}, so no dead letters{hint}", err=True)
        return
    chosen = LetterFilter(sources=source or (), since=start)
    try:
        letters, total = asyncio.run(_with_ops(loaded, data, lambda ops: letter_page(ops, chosen, limit, 0)))
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


report_app = typer.Typer(
    help="Reports: the morning briefing, the shift handover and the monthly report.", no_args_is_help=True
)
app.add_typer(report_app, name="report")
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
    from typing import cast

    from rich.console import Console

    from reports import BINARY_FORMATS, FORMATS, Format, Lang, render

    if fmt not in FORMATS:
        raise typer.BadParameter(f"{fmt!r} is not one of {', '.join(FORMATS)}", param_hint="--format")
    if fmt in BINARY_FORMATS and out is None:
        raise typer.BadParameter(f"{fmt} is a file, not for a terminal: give --out FILE.{fmt}", param_hint="--format")
    if lang not in ("zh", "en"):
        raise typer.BadParameter(f"{lang!r} is not zh or en", param_hint="--lang")
    loaded = _load(site)
    where, absent = _ops_place(loaded, data)

    async def build(ops: OpsStore) -> tuple[Any, bool]:
        return await make(loaded, ops), not await ops.list_alarms(include_closed=True, limit=1)

    try:  # a month over a large store takes a while: a spinner on stderr (on a terminal only)
        with Console(stderr=True).status(f"building the report from {where}"):
            report, empty = asyncio.run(_with_ops(loaded, data, build))
        text = render(report, cast("Format", fmt), cast("Lang", lang))
    except ConfigError as exc:
        typer.echo(f"error: the site's rules or schedules cannot be used:\n{exc}", err=True)
        raise typer.Exit(2) from None
    except (RuntimeError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if absent or empty:  # an all-zero report is then no news: say where it looked
        found = "there was no ops store" if absent else "the ops store holds no alarm"
        hint = _DEMO_DATA_HINT if data is None else " (is it the folder of `facility demo --data`?)"
        typer.echo(f"note: {found} at {where}, so the report is empty{hint}", err=True)
    _emit(text, out)


@report_app.command("briefing")
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
    from datetime import date

    from facility.model import now_ns
    from reports import briefing

    try:
        chosen = date.fromisoformat(day) if day else None
    except ValueError:
        raise typer.BadParameter(f"{day!r} is not a date; write YYYY-MM-DD", param_hint="--date") from None

    async def make(loaded: Site, ops: OpsStore) -> Any:
        return await briefing(loaded, ops, chosen, now=now_ns())

    _report(site, data, fmt, lang, out, make)


@report_app.command("handover")
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
    from facility.model import now_ns
    from reports import handover

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
        except ValueError as exc:
            raise typer.BadParameter(str(exc).partition(": ")[2], param_hint="--since") from None

    _report(site, data, fmt, lang, out, make)


@report_app.command("monthly")
def report_monthly(
    month: Annotated[str | None, typer.Option(help="YYYY-MM (default: last month)")] = None,
    fmt: ReportFormat = "md",
    lang: ReportLang = "zh",
    out: ReportOut = None,
    site: ReportSite = DEMO_SITE,
    data: DataOption = None,
) -> None:
    """The monthly report: acknowledge and repair times, deadlines kept, alarm load, availability."""
    import re
    from datetime import timedelta

    from facility.model import now_ns
    from reports import monthly

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
            return await monthly(loaded, ops, year, number, now=now)
        except ValueError as exc:
            raise typer.BadParameter(str(exc).partition(": ")[2], param_hint="--month") from None

    _report(site, data, fmt, lang, out, make)


@sim_app.command("run")
def sim_run(
    site: Annotated[Path, typer.Argument(help="site file")],
    port: Annotated[int, typer.Option(help="HTTP port of the control API")] = 8001,
    host: Annotated[str, typer.Option(help="address of the control API")] = "127.0.0.1",
    token_file: TokenFileOption = None,
    scale: ScaleOption = 1,
    verbose: VerboseOption = False,
) -> None:
    """Run only the simulators of a site, for a gateway in another process or on another machine."""
    from facility_app.runtime import run_simulators

    _logging(verbose)
    given = _admin_token(token_file)
    loaded = _load(site, scale)
    token = given or secrets.token_urlsafe(32)
    typer.echo(f"Control API: http://{host}:{port}/sim/devices" + ("" if given else f"  token: {token}"))
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run_simulators(loaded, host, port, token))
    except (ConfigError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


SimUrl = Annotated[
    str, typer.Option("--url", envvar="FACILITY_URL", help="base URL of `facility demo` or `facility sim run`")
]


def _control(url: str, token_file: Path | None, method: str, path: str, body: Any = None) -> Any:
    base = url.rstrip("/") + "/sim"
    token = _given_token(token_file)
    request = urllib.request.Request(
        base + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token or ''}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        typer.echo(f"error: {exc.code} {detail}", err=True)
        raise typer.Exit(1) from None
    except urllib.error.URLError as exc:
        typer.echo(f"error: cannot reach {base}: {exc.reason}", err=True)
        raise typer.Exit(1) from None


@sim_app.command("devices")
def sim_devices(url: SimUrl = "http://127.0.0.1:8000", token_file: SendTokenFileOption = None) -> None:
    """List simulated devices with their faults."""
    for d in _control(url, token_file, "GET", "/devices"):
        typer.echo(
            f"{d['id']:<18} {d['type']:<14} faults: {', '.join(d['faults']) or '-'}"
            f"  (can: {', '.join(d['available_faults'])})"
        )


def _param(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise typer.BadParameter(f"{text!r}: write KEY=VALUE, e.g. zone=3")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


@sim_app.command("fault", cls=_Command)
def sim_fault(
    device: Annotated[str, typer.Argument(help="a device id, as `facility sim devices` lists them")],
    fault: Annotated[str, typer.Argument(help="one of the faults the device can be given (its `can:`)")],
    params: Annotated[list[str] | None, typer.Argument(help="fault parameters as KEY=VALUE, e.g. zone=3")] = None,
    url: SimUrl = "http://127.0.0.1:8000",
    token_file: SendTokenFileOption = None,
) -> None:
    """Inject FAULT into DEVICE."""
    _control(
        url,
        token_file,
        "POST",
        "/faults",
        {"device": device, "fault": fault, "params": dict(map(_param, params or []))},
    )
    typer.echo(f"{device}: {fault} injected")


@sim_app.command("scenarios")
def sim_scenarios(url: SimUrl = "http://127.0.0.1:8000", token_file: SendTokenFileOption = None) -> None:
    """List the scenario library and the runs so far."""
    listing = _control(url, token_file, "GET", "/scenarios")
    for s in listing["library"]:
        typer.echo(f"{s['name']:<28} {s['steps']:>2} steps  x{s['speed']:g}  {s['title'].get('en', '')}")
    for r in listing["runs"]:
        typer.echo(f"run {r['id']}: {r['name']} {r['state']} ({len(r['done'])}/{r['steps']} steps) {r['error']}")


@sim_app.command("play")
def sim_play(
    name: Annotated[str, typer.Argument(help="a scenario of the library, or a scenario file (.yaml)")],
    speed: Annotated[float | None, typer.Option(help="override the scenario's speed factor")] = None,
    url: SimUrl = "http://127.0.0.1:8000",
    token_file: SendTokenFileOption = None,
) -> None:
    """Play a scenario against the running simulators."""
    body: dict[str, Any] = {"speed": speed}
    path = Path(name)
    if name.endswith((".yaml", ".yml")):
        try:
            body["definition"] = path.read_text(encoding="utf-8")
        except OSError as exc:
            typer.echo(f"error: cannot read {path}: {exc.strerror}", err=True)
            raise typer.Exit(2) from None
    else:
        body["name"] = name
    run = _control(url, token_file, "POST", "/scenarios", body)
    typer.echo(f"run {run['id']}: {run['name']} playing ({run['steps']} steps, x{run['speed']:g})")


@sim_app.command("clear")
def sim_clear(
    device: Annotated[str, typer.Argument(help="a device id, as `facility sim devices` lists them")],
    fault: Annotated[str | None, typer.Argument(help="one fault (default: all)")] = None,
    url: SimUrl = "http://127.0.0.1:8000",
    token_file: SendTokenFileOption = None,
) -> None:
    """Clear one fault, or all faults, of DEVICE."""
    _control(url, token_file, "DELETE", f"/faults/{device}" + (f"/{fault}" if fault else ""))
    typer.echo(f"{device}: {fault or 'all faults'} cleared")


broker_app = typer.Typer(help="The MQTT broker of a deployment: its users' rights.", no_args_is_help=True)
app.add_typer(broker_app, name="broker")


@broker_app.command("acl")
def broker_acl(
    site: Annotated[Path, typer.Argument(help="site file")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write here (default: stdout)")] = None,
) -> None:
    """The Mosquitto acl_file of a site: the service's user reads the devices and owns
    facility/v1/, each MQTT device's user (its id) writes its own topics only."""
    from facility.mqtt_acl import AclError, render_acl

    try:
        text = render_acl(_load(site))
    except AclError as exc:
        typer.echo(f"error: no safe ACL for {site}: {exc}", err=True)
        raise typer.Exit(2) from None
    _emit(text, output)


db_app = typer.Typer(help="The ops store's schema: its revision, and upgrades to this version's.", no_args_is_help=True)
app.add_typer(db_app, name="db")
DbSite = Annotated[Path, typer.Option("--site", "-c", help="site file (its stores.ops names the database)")]


def _ops_of(site: Path, data: Path | None) -> OpsStore:
    """The site's ops store (or the one in a `--data` folder), not started: `db` commands decide
    what happens to its schema."""
    from facility_app.runtime import ops_url  # the runtime imports every package: only when needed

    return OpsStore(ops_url(_load(site), data))


@db_app.command("current")
def db_current(site: DbSite = DEMO_SITE, data: DataOption = None) -> None:
    """Print the database's revision and whether it is the newest; exit 1 unless it is.

    It changes nothing (nor makes a SQLite file that is not there): a deployment script can ask
    whether an upgrade is due."""
    from facility.store.migrations import Schema

    async def read() -> Schema:
        ops = _ops_of(site, data)
        try:
            return await ops.schema()
        finally:
            await ops.close()

    schema = asyncio.run(read())
    typer.echo(schema.describe())
    if not schema.newest:
        raise typer.Exit(1)


@db_app.command("upgrade")
def db_upgrade(site: DbSite = DEMO_SITE, data: DataOption = None) -> None:
    """Bring the database to this version's newest revision and say from which to which.

    Every start does the same, under the same lock: this is for upgrading in a maintenance window,
    before the service starts, rather than at its first start."""
    from facility.store.migrations import SchemaRefused, Upgraded

    async def upgrade() -> Upgraded:
        ops = _ops_of(site, data)
        try:
            return await ops.upgrade()
        finally:
            await ops.close()

    try:
        done = asyncio.run(upgrade())
    except SchemaRefused as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(done.describe())
