"""What the sub-command groups share: their options, loading the site file, printing a document,
and reaching the ops store from the command line."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from sqlalchemy.engine import make_url
from typer.core import TyperArgument, TyperCommand

from facility.replica import replicate
from facility.site import Site, load_site
from facility.store.ops import OpsStore
from facility.yamlfile import ConfigError
from facility_app.places import ops_url

T = TypeVar("T")

DEMO_SITE = Path("sites/demo/site.yaml")
DEMO_DATA_HINT = " (`facility demo` keeps its data in var/demo: add --data var/demo)"  # where a newcomer looks
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
DataOption = Annotated[Path | None, typer.Option(help="the data folder of `facility demo --data` instead")]


class _ManyValuedArgument(TyperArgument):
    """A many-valued argument shown in --help by its name alone (`PATH...`): typer adds its
    Python type, `<list[Path]>`, which tells a user nothing (and ignores `metavar=`)."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None


class Command(TyperCommand):
    """A command whose many-valued arguments are shown as `_ManyValuedArgument`s."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if isinstance(param, TyperArgument) and param.nargs != 1:
                param.__class__ = _ManyValuedArgument


def emit(document: str | bytes, out: Path | None) -> None:
    """A command's document, to the file asked for or else to stdout (text only: a caller refuses a
    binary format without a file before building it)."""
    if isinstance(document, bytes):
        assert out is not None, "a binary document needs --out"
        out.write_bytes(document)
    elif out is None:
        typer.echo(document, nl=False)
    else:
        out.write_text(document, encoding="utf-8")


def configure_logging(verbose: bool) -> None:
    """Logging for a server: the libraries' own chatter only with --verbose."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    for noisy in ("amqtt", "transitions", "pymodbus"):
        logging.getLogger(noisy).setLevel(logging.WARNING if verbose else logging.ERROR)


def load(path: Path, scale: int = 1) -> Site:
    """The site file, or a usage error (exit 2) that says what in it cannot be used."""
    try:
        return replicate(load_site(path), scale)
    except ConfigError as exc:
        typer.echo(f"error: the site file cannot be used:\n{exc}", err=True)
        raise typer.Exit(2) from None
    except ValueError as exc:
        typer.echo(f"error: cannot replicate the estate {scale} times: {exc}", err=True)
        raise typer.Exit(2) from None


def parsed(parse: Callable[[], int], name: str) -> int:
    """The parsed value of an option, or a usage error naming it."""
    try:
        return parse()
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=name) from None


def counted(count: int, noun: str) -> str:
    """`1 rule`, `0 rules`, `2 rules`: an engineer reads the summary, not a template."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def ops_place(site: Site, data: Path | None) -> tuple[str, bool]:
    """Where a command reads the ops store (a file, or a URL without its password), and whether
    it is a SQLite file that is not there: what a newcomer must be told when a report is empty."""
    url = make_url(ops_url(site, data))
    if url.drivername.startswith("sqlite") and url.database and url.database != ":memory:":
        return url.database, not Path(url.database).exists()
    return url.render_as_string(hide_password=True), False


async def with_ops(site: Site, data: Path | None, act: Callable[[OpsStore], Awaitable[T]]) -> T:
    """`act` on the site's ops store (or the one in a `--data` folder), closed afterwards."""
    ops = OpsStore(ops_url(site, data), site=site.site.id)
    await ops.start()
    try:
        return await act(ops)
    finally:
        await ops.close()
