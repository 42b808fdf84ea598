"""`facility db ...`: the ops store's schema revision, read or upgraded outside a start."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from facility.store.migrations import Schema, SchemaRefused, Upgraded
from facility.store.ops import OpsStore
from facility_app.cli.options import DEMO_SITE, DataOption, load
from facility_app.places import ops_url

app = typer.Typer(help="The ops store's schema: its revision, and upgrades to this version's.", no_args_is_help=True)
DbSite = Annotated[Path, typer.Option("--site", "-c", help="site file (its stores.ops names the database)")]


def _ops_of(site: Path, data: Path | None) -> OpsStore:
    """The site's ops store (or the one in a `--data` folder), not started: `db` commands decide
    what happens to its schema."""
    loaded = load(site)
    return OpsStore(ops_url(loaded, data), site=loaded.site.id)


@app.command("current")
def db_current(site: DbSite = DEMO_SITE, data: DataOption = None) -> None:
    """Print the database's revision and whether it is the newest; exit 1 unless it is.

    It changes nothing (nor makes a SQLite file that is not there): a deployment script can ask
    whether an upgrade is due."""

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


@app.command("upgrade")
def db_upgrade(site: DbSite = DEMO_SITE, data: DataOption = None) -> None:
    """Bring the database to this version's newest revision and say from which to which.

    Every start does the same, under the same lock: this is for upgrading in a maintenance window,
    before the service starts, rather than at its first start."""

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
