"""`facility sim ...`: the simulated plant, run alone or driven over its control API (of
`facility demo` or `facility sim run`) from another terminal."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import urllib.error
import urllib.request
from pathlib import Path
from typing import Annotated, Any

import typer

from facility.yamlfile import ConfigError
from facility_app.cli.options import Command, ScaleOption, TokenFileOption, VerboseOption, configure_logging, load
from facility_app.cli.tokens import admin_token, given_token

app = typer.Typer(help="Simulated plant: run it, list its devices, inject and clear faults.", no_args_is_help=True)
SimUrl = Annotated[
    str, typer.Option("--url", envvar="FACILITY_URL", help="base URL of `facility demo` or `facility sim run`")
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


@app.command("run")
def sim_run(
    site: Annotated[Path, typer.Argument(help="site file")],
    port: Annotated[int, typer.Option(help="HTTP port of the control API")] = 8001,
    host: Annotated[str, typer.Option(help="address of the control API")] = "127.0.0.1",
    token_file: TokenFileOption = None,
    scale: ScaleOption = 1,
    verbose: VerboseOption = False,
) -> None:
    """Run only the simulators of a site, for a gateway in another process or on another machine."""
    # Imported here: the simulators' server pulls in the web stack, which the client commands
    # below (`sim fault` in a demo's second terminal) do not need, and they should answer quickly.
    from facility_app.simulation import run_simulators

    configure_logging(verbose)
    given = admin_token(token_file)
    loaded = load(site, scale)
    token = given or secrets.token_urlsafe(32)
    typer.echo(f"Control API: http://{host}:{port}/sim/devices" + ("" if given else f"  token: {token}"))
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run_simulators(loaded, host, port, token))
    except (ConfigError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def _control(url: str, token_file: Path | None, method: str, path: str, body: Any = None) -> Any:
    """One call to the simulators' control API; an HTTP error or no answer ends the command (exit 1)."""
    base = url.rstrip("/") + "/sim"
    token = given_token(token_file)
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


@app.command("devices")
def sim_devices(url: SimUrl = "http://127.0.0.1:8000", token_file: SendTokenFileOption = None) -> None:
    """List simulated devices with their faults."""
    for d in _control(url, token_file, "GET", "/devices"):
        typer.echo(
            f"{d['id']:<18} {d['type']:<14} faults: {', '.join(d['faults']) or '-'}"
            f"  (can: {', '.join(d['available_faults'])})"
        )


def _param(text: str) -> tuple[str, Any]:
    """A fault parameter `KEY=VALUE`; the value is JSON when it parses (zone=3 is a number)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise typer.BadParameter(f"{text!r}: write KEY=VALUE, e.g. zone=3")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


@app.command("fault", cls=Command)
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


@app.command("scenarios")
def sim_scenarios(url: SimUrl = "http://127.0.0.1:8000", token_file: SendTokenFileOption = None) -> None:
    """List the scenario library and the runs so far."""
    listing = _control(url, token_file, "GET", "/scenarios")
    for s in listing["library"]:
        typer.echo(f"{s['name']:<28} {s['steps']:>2} steps  x{s['speed']:g}  {s['title'].get('en', '')}")
    for r in listing["runs"]:
        typer.echo(f"run {r['id']}: {r['name']} {r['state']} ({len(r['done'])}/{r['steps']} steps) {r['error']}")


@app.command("play")
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


@app.command("clear")
def sim_clear(
    device: Annotated[str, typer.Argument(help="a device id, as `facility sim devices` lists them")],
    fault: Annotated[str | None, typer.Argument(help="one fault (default: all)")] = None,
    url: SimUrl = "http://127.0.0.1:8000",
    token_file: SendTokenFileOption = None,
) -> None:
    """Clear one fault, or all faults, of DEVICE."""
    _control(url, token_file, "DELETE", f"/faults/{device}" + (f"/{fault}" if fault else ""))
    typer.echo(f"{device}: {fault or 'all faults'} cleared")
