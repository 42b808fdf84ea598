"""`facility users ...`: the desk's and the API's users, kept in the ops store."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, TypeVar
from zoneinfo import ZoneInfo

import typer

from facility.site import Site
from facility.store.ops import OpsStore
from facility.store.reads.estates import estates
from facility.store.users import Role, UserStore
from facility_app.cli.options import DEMO_SITE, DataOption, load, with_ops

T = TypeVar("T")

app = typer.Typer(help="Users of the desk and the API, each with a role and a token.", no_args_is_help=True)
UsersSite = Annotated[Path, typer.Option("--site", "-c", help="site file (its ops store holds the users)")]


async def _with_users(site: Site, data: Path | None, act: Callable[[UserStore], Awaitable[T]]) -> T:
    """`act` on the users of the site's ops store (or a `--data` folder's), closed afterwards."""
    return await with_ops(site, data, lambda ops: act(UserStore(ops)))


@app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="who: a person or a desk")],
    role: Annotated[str, typer.Option(help="viewer, duty, engineer, manager or admin")],
    building: Annotated[
        list[str] | None,
        typer.Option(metavar="BUILDING", help="limit the user to this building (repeat for more); default: all"),
    ] = None,
    estate: Annotated[
        list[str] | None,
        typer.Option(metavar="SITE_ID", help="an estate the user may reach (repeat for more); default: the --site's"),
    ] = None,
    every_estate: Annotated[
        bool, typer.Option("--every-estate", help="the user may reach every estate (the command centre)")
    ] = False,
    site: UsersSite = DEMO_SITE,
    data: DataOption = None,
) -> None:
    """Add a user and print their token, once: only its digest is kept. The user is limited to the
    estate of `--site` unless `--estate` names others or `--every-estate` says all."""
    loaded = load(site)
    try:
        level = Role.named(role)
        if every_estate and estate:
            raise ValueError("estate: give --estate or --every-estate, not both")
        sites = None if every_estate else (estate or [loaded.site.id])
        known = {d.location.building for d in loaded.devices if d.location.building}
        for b in building or ():
            if b not in known:
                raise ValueError(f"building: no building {b!r} in this site (known: {', '.join(sorted(known))})")

        async def add(ops: OpsStore) -> tuple[str, list[str]]:
            token = await UserStore(ops).add(name, level, building or (), sites)
            registered = {e.site for e in await estates(ops, None)}
            return token, sorted(set(sites or ()) - registered)

        token, unheard = asyncio.run(with_ops(loaded, data, add))
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{name} ({level.name.lower()}): {token}")
    typer.echo("The token is shown this once; keep it like a password.", err=True)
    if unheard:  # a typo, or an estate not started yet: the user can reach it once it runs
        typer.echo(
            f"warning: no process of the estate {', '.join(unheard)} has used this database yet; check the site id",
            err=True,
        )


@app.command("list")
def users_list(site: UsersSite = DEMO_SITE, data: DataOption = None) -> None:
    """Every user with their role and when they were added (tokens are never shown again)."""
    loaded = load(site)
    zone = ZoneInfo(loaded.site.timezone)
    for user, created in asyncio.run(_with_users(loaded, data, lambda users: users.all())):
        added = datetime.fromtimestamp(created / 1e9, zone).strftime("%Y-%m-%d %H:%M")
        where = ", ".join(sorted(user.buildings)) if user.buildings else "all buildings"
        estates = ", ".join(sorted(user.sites)) if user.sites else "every estate"
        typer.echo(f"{user.name}\t{user.role.name.lower()}\t{estates}\t{where}\tadded {added}")


@app.command("revoke")
def users_revoke(
    name: Annotated[str, typer.Argument(help="the user, as `facility users list` names them")],
    site: UsersSite = DEMO_SITE,
    data: DataOption = None,
) -> None:
    """Remove a user: their token stops working at once."""
    if not asyncio.run(_with_users(load(site), data, lambda users: users.revoke(name))):
        typer.echo(f"error: no user {name!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"{name}: revoked")
