"""The `facility` command."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Annotated, Any

import typer

from facility.site import Site, load_site, replicate
from facility.yamlfile import ConfigError

app = typer.Typer(
    help="Facility monitoring: gateway, rules, duty desk and simulators.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
sim_app = typer.Typer(help="Simulated plant: run it, list its devices, inject and clear faults.", no_args_is_help=True)
app.add_typer(sim_app, name="sim")

DEMO_SITE = Path("sites/demo/site.yaml")
ScaleOption = Annotated[int, typer.Option(min=1, help="replicate the estate N times (benchmarks)")]
TokenOption = Annotated[
    str | None,
    typer.Option("--token", envvar="FACILITY_TOKEN", help="API token (default: a random one, printed once)"),
]


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


def _serve(site: Site, options: Any, banner: bool) -> None:
    from facility.runtime import serve  # imported here so that `facility sim fault` stays quick

    token = next(iter(options.tokens))

    def ready(url: str, running: Site) -> None:
        lines = [f"Duty desk:  {url}/#token={token}", f"Login token: {token}", f"API:        {url}/api/docs"]
        if banner:
            lines.append(f"Simulators: {url}/sim/devices  (facility sim fault DEVICE FAULT --url {url})")
            lines += [f"  {d.id:<18} {d.type:<14} {_binding(d)}" for d in running.devices]
        lines.append("Ctrl-C stops.")
        typer.echo("\n".join(lines), err=False)
        sys.stdout.flush()

    try:
        asyncio.run(serve(site, options, ready))
    except KeyboardInterrupt:
        pass
    except (ConfigError, RuntimeError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
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
    token: TokenOption = None,
    mqtt: Annotated[
        str | None, typer.Option(help="use this broker (mqtt://HOST:PORT) instead of an embedded one")
    ] = None,
    data: Annotated[Path, typer.Option(help="folder for the demo's stores")] = Path("var/demo"),
    scale: ScaleOption = 1,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the whole system with simulated plant: broker, simulators, gateway, rules, API and desk."""
    from facility.runtime import Options, with_local_endpoints

    _logging(verbose)
    loaded = _load(site, scale)
    if mqtt:
        loaded = with_local_endpoints(loaded, mqtt)
    token = token or secrets.token_urlsafe(16)
    options = Options(
        host=host, port=port, tokens={token: "demo"}, simulate=True, embedded_broker=mqtt is None, data_dir=data
    )
    _serve(loaded, options, banner=True)


@app.command()
def run(
    config: Annotated[Path, typer.Option("--config", "-c", help="site file")],
    port: Annotated[int, typer.Option(help="HTTP port of the desk and API")] = 8000,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    token: TokenOption = None,
    scale: ScaleOption = 1,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run gateway, rules and API for a site against its broker and devices."""
    from facility.runtime import Options

    _logging(verbose)
    loaded = _load(config, scale)
    token = token or secrets.token_urlsafe(16)
    _serve(loaded, Options(host=host, port=port, tokens={token: "operator"}), banner=False)


@app.command()
def check(site: Annotated[Path, typer.Argument(help="site file")]) -> None:
    """Validate a site file, its profiles and its rules; errors name file, line and field."""
    from rules.ruleset import load_rules

    loaded = _load(site)
    try:
        rules = load_rules(loaded)
    except ConfigError as exc:
        typer.echo(f"error: the rules cannot be used:\n{exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{site}: {len(loaded.devices)} devices, {len(rules)} rules: OK")


@sim_app.command("run")
def sim_run(
    site: Annotated[Path, typer.Argument(help="site file")],
    port: Annotated[int, typer.Option(help="HTTP port of the control API")] = 8001,
    host: Annotated[str, typer.Option(help="address of the control API")] = "127.0.0.1",
    token: TokenOption = None,
    scale: ScaleOption = 1,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run only the simulators of a site, for a gateway in another process or on another machine."""
    from facility.runtime import run_simulators

    _logging(verbose)
    loaded = _load(site, scale)
    token = token or secrets.token_urlsafe(16)
    typer.echo(f"Control API: http://{host}:{port}/sim/devices  token: {token}")
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run_simulators(loaded, host, port, token))
    except (ConfigError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


SimUrl = Annotated[
    str, typer.Option("--url", envvar="FACILITY_URL", help="base URL of `facility demo` or `facility sim run`")
]


def _control(url: str, token: str | None, method: str, path: str, body: Any = None) -> Any:
    base = url.rstrip("/") + "/sim"
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
def sim_devices(url: SimUrl = "http://127.0.0.1:8000", token: TokenOption = None) -> None:
    """List simulated devices with their faults."""
    for d in _control(url, token, "GET", "/devices"):
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


@sim_app.command("fault")
def sim_fault(
    device: str,
    fault: str,
    params: Annotated[list[str] | None, typer.Argument(help="fault parameters as KEY=VALUE, e.g. zone=3")] = None,
    url: SimUrl = "http://127.0.0.1:8000",
    token: TokenOption = None,
) -> None:
    """Inject FAULT into DEVICE."""
    _control(
        url, token, "POST", "/faults", {"device": device, "fault": fault, "params": dict(map(_param, params or []))}
    )
    typer.echo(f"{device}: {fault} injected")


@sim_app.command("scenarios")
def sim_scenarios(url: SimUrl = "http://127.0.0.1:8000", token: TokenOption = None) -> None:
    """List the scenario library and the runs so far."""
    listing = _control(url, token, "GET", "/scenarios")
    for s in listing["library"]:
        typer.echo(f"{s['name']:<28} {s['steps']:>2} steps  x{s['speed']:g}  {s['title'].get('en', '')}")
    for r in listing["runs"]:
        typer.echo(f"run {r['id']}: {r['name']} {r['state']} ({len(r['done'])}/{r['steps']} steps) {r['error']}")


@sim_app.command("play")
def sim_play(
    name: Annotated[str, typer.Argument(help="a scenario of the library, or a scenario file (.yaml)")],
    speed: Annotated[float | None, typer.Option(help="override the scenario's speed factor")] = None,
    url: SimUrl = "http://127.0.0.1:8000",
    token: TokenOption = None,
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
    run = _control(url, token, "POST", "/scenarios", body)
    typer.echo(f"run {run['id']}: {run['name']} playing ({run['steps']} steps, x{run['speed']:g})")


@sim_app.command("clear")
def sim_clear(
    device: str,
    fault: Annotated[str | None, typer.Argument(help="one fault (default: all)")] = None,
    url: SimUrl = "http://127.0.0.1:8000",
    token: TokenOption = None,
) -> None:
    """Clear one fault, or all faults, of DEVICE."""
    _control(url, token, "DELETE", f"/faults/{device}" + (f"/{fault}" if fault else ""))
    typer.echo(f"{device}: {fault or 'all faults'} cleared")
