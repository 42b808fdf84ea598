"""`facility broker ...`: what the MQTT broker of a deployment is told about the site."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from facility.mqtt_acl import AclError, render_acl
from facility_app.cli.options import emit, load

app = typer.Typer(help="The MQTT broker of a deployment: its users' rights.", no_args_is_help=True)


@app.command("acl")
def broker_acl(
    site: Annotated[Path, typer.Argument(help="site file")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write here (default: stdout)")] = None,
) -> None:
    """The Mosquitto acl_file of a site: the service's user reads the devices and owns
    facility/v1/, each MQTT device's user (its id) writes its own topics only."""
    try:
        text = render_acl(load(site))
    except AclError as exc:
        typer.echo(f"error: no safe ACL for {site}: {exc}", err=True)
        raise typer.Exit(2) from None
    emit(text, output)
