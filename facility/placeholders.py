"""Secrets still at the placeholder values of deploy/env.example.

An operator who copies the example to `.env` and forgets a line would otherwise run a service
whose token or password is printed in the repository. Every placeholder of the example begins
`replace-with-`, and that prefix is the test: the installed image carries no deploy/ folder to
compare with, and a placeholder added to the example later (Grafana's) is caught without a change
here. tests/test_placeholders.py holds the example to that form.
"""

from __future__ import annotations

from collections.abc import Mapping

PLACEHOLDER_PREFIX = "replace-with-"
_QUOTES = "'\""


def is_placeholder(value: str) -> bool:
    """Whether `value` is a placeholder, also when written quoted or with blanks around it (as a
    hand-edited `.env` line or an `environment:` entry of a compose file may pass it on)."""
    return value.strip().strip(_QUOTES).strip().lower().startswith(PLACEHOLDER_PREFIX)


def placeholder_variables(environ: Mapping[str, str]) -> list[str]:
    """The names of the variables of `environ` that still hold a placeholder, sorted; only names,
    so that a message built from them never shows a value."""
    return sorted(name for name, value in environ.items() if is_placeholder(value))
