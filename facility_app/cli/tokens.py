"""The admin token a server is given: where it is read from, and when it is refused.

A token opens every action of the site, so a weak one, or the placeholder of deploy/env.example,
is refused before anything starts; and it is read from a file or the environment, never the
command line, where `ps` shows it.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from facility.placeholders import is_placeholder, placeholder_variables

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


def given_token(token_file: Path | None) -> str | None:
    """The token given in the file (`--token-file`, FACILITY_TOKEN_FILE) or in FACILITY_TOKEN."""
    if token_file is not None:
        try:
            return token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            typer.echo(f"error: cannot read the token file {token_file}: {exc}", err=True)
            raise typer.Exit(2) from None
    return os.environ.get("FACILITY_TOKEN") or None


def admin_token(token_file: Path | None) -> str | None:
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
    token = given_token(token_file)
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
