"""`facility demo`, `facility run` and `facility check`: serve a site, or check its files first."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from facility.site import Device, Site
from facility.yamlfile import ConfigError
from facility_app.cli.options import (
    DEMO_SITE,
    ScaleOption,
    TokenFileOption,
    VerboseOption,
    configure_logging,
    counted,
    load,
)
from facility_app.cli.tokens import admin_token, given_token, token_problem
from rules.plans import load_plans
from rules.ruleset import load_rules
from rules.schedules import load_schedules

PARTS = ("gateway", "writer", "rules", "api")  # what `facility run --parts` chooses from (facility_app.runtime)

if TYPE_CHECKING:
    from facility_app.runtime import Options

# The runtime is imported inside the commands that serve: it pulls in every part (the web stack,
# the gateway, the simulators), which would double the start of every other command, --help and
# the `facility sim fault` a demo's second terminal types included.


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
    from facility_app.runtime import Options, with_local_endpoints  # see the note at the imports

    configure_logging(verbose)
    if token_file is not None and token_file.resolve() == (data / "token").resolve():
        token_file = None  # the demo's own, exported by its banner into this shell: not an operator's
    given = admin_token(token_file)
    loaded = load(site, scale)
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


def run(
    config: Annotated[Path, typer.Option("--config", "-c", help="site file")],
    port: Annotated[int, typer.Option(help="HTTP port of the desk and API")] = 8000,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    token_file: TokenFileOption = None,
    parts: Annotated[
        str,
        typer.Option(
            help="what this process runs, of gateway, writer, rules and api, comma-separated (docs/scale-out.md)"
        ),
    ] = ",".join(PARTS),
    instance: Annotated[
        str, typer.Option(help="this process's name among those running the same parts: keep it across restarts")
    ] = "1",
    simulate: Annotated[
        bool,
        typer.Option(
            "--simulate",
            help="run the site's simulators in this process, on the site file's ports, with /sim behind the users",
        ),
    ] = False,
    scale: ScaleOption = 1,
    verbose: VerboseOption = False,
) -> None:
    """Run gateway, writer, rules and API for a site against its broker and devices, or the parts
    of them named by --parts. An admin token may be given (FACILITY_TOKEN, or --token-file); the
    desk's users are those of `facility users add`. With --simulate the plant is the site's
    simulators, as in `facility demo`, but on the site file's broker and stores."""
    from facility_app.runtime import Options  # see the note at the imports

    chosen = parsed_parts(parts)
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,40}", instance):
        raise typer.BadParameter("letters, digits, '.', '_' and '-', at most 40", param_hint="--instance")
    configure_logging(verbose)
    token = admin_token(token_file)
    loaded = load(config, scale)
    if token is None:
        logging.getLogger("facility").info(
            "no admin token given (FACILITY_TOKEN or --token-file): the users of `facility users add` sign in"
        )
    tokens = {token: "operator"} if token else {}
    if simulate and "api" not in chosen:
        raise typer.BadParameter(
            "the simulators' /sim is served by the api: add it to --parts", param_hint="--simulate"
        )
    options = Options(host=host, port=port, tokens=tokens, parts=chosen, instance=instance, simulate=simulate)
    _serve(loaded, options, banner=False)


def parsed_parts(given: str) -> frozenset[str]:
    """The parts --parts names, or a usage error saying which name is wrong or what is missing."""
    chosen = frozenset(p.strip() for p in given.split(",") if p.strip())
    unknown = sorted(chosen - set(PARTS))
    if unknown or not chosen:
        raise typer.BadParameter(
            f"{', '.join(unknown) or 'none'} given; choose from {', '.join(PARTS)}", param_hint="--parts"
        )
    if "api" in chosen and "rules" not in chosen:
        # The desk's actions (acknowledge, shelve, dispatch) go through the rules' lifecycle, and
        # its event stream is the rules' bus: both are in-process until events travel over MQTT.
        raise typer.BadParameter("the api needs the rules in the same process", param_hint="--parts")
    return chosen


def check(site: Annotated[Path, typer.Argument(help="site file")]) -> None:
    """Validate a site file, its profiles, rules, plans and schedules; errors name file, line and
    field. What loads but is likely a slip (a text in one language only) is a warning on stderr."""
    loaded = load(site)
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
    typer.echo(f"{site}: {counted(len(loaded.devices), 'device')}, {counted(len(rules), 'rule')}: OK")


def _demo_token(data: Path) -> tuple[str, Path]:
    """The demo's own admin token and its file, `<data>/token`: made on first start and read after,
    so that a restart leaves an open desk (and the other terminal's FACILITY_TOKEN_FILE) signed in.
    Created 0600 in one step (O_EXCL), so it is never readable by others, not even for a moment."""
    path = data / "token"
    try:
        data.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        token = given_token(path) or ""
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


def _serve(
    site: Site, options: Options, banner: bool, login: str | None = None, token_file: Path | None = None
) -> None:
    """Serve until stopped. `login` is shown only for a token the process made itself (the
    demo's): a token given to it is the operator's, and stays out of every output. The banner
    ends with the `export` lines that point `facility sim ...` in another terminal at this
    server: its URL (the port may be any) and the file of the token, never the token itself."""
    from facility_app.runtime import serve  # see the note at the imports

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


def _binding(device: Device) -> str:
    """How the gateway reaches a device, for the demo's banner."""
    if device.modbus:
        kind = "rtu" if device.modbus.serial else "tcp"
        return f"modbus {kind} {device.modbus.endpoint} unit {device.modbus.unit}"
    assert device.mqtt is not None  # a device is bound by Modbus or by MQTT
    return f"mqtt {device.mqtt.topic}"
