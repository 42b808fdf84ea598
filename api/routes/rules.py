"""Rules, for engineers: what is loaded, checking a rule file before it is saved, and reloading."""

from __future__ import annotations

import asyncio
import re
import tempfile
from collections.abc import Collection
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from api import schemas
from api.auth import User
from api.body import Body, documented, parsed_off_loop
from api.context import ApiContext
from api.deps import Ctx, Engineer
from facility.errors import Invalid
from facility.site import Site
from facility.yamlfile import ConfigError, parse_yaml
from rules.ruleset import Rule, load_rules, rule_paths

MAX_RULE_FILE = 1_000_000  # characters


# One file name, written in a folder of its own: no separator, and no leading dot, which refuses
# `.` and `..` (the folder itself and its parent) and hidden files.
FILE_NAME = r"^[\w-][\w.-]{0,99}$"


class RuleFileText(Body):
    text: str = Field(max_length=MAX_RULE_FILE, description="the YAML of one rule file")
    name: str = Field(
        default="candidate.yaml",
        pattern=FILE_NAME,
        description="a file name (letters, digits, `_`, `-`, `.`; not starting with `.`), named in the problems",
    )


class Checked(BaseModel):
    ok: bool
    problems: list[str] = Field(description="each as `file:line: field: message`")


class Reloaded(Checked):
    loaded: int = Field(description="rules running now")


def check_text(site: Site, name: str, text: str) -> list[str]:
    """The problems of a rule file as if it were added to the site's rules (so that it may name the
    library's rules and plans); blocking: reads files."""
    with tempfile.TemporaryDirectory(prefix="facility-rule-check-") as folder:
        candidate = Path(folder) / name
        candidate.write_text(text, encoding="utf-8")
        try:
            load_rules(site, [*rule_paths(site), candidate])
        except ConfigError as exc:
            return [str(p).replace(str(candidate), name) for p in exc.problems]
    return []


OTHER_BUILDING = "<a device of another building>"


def redacted(problems: list[str], hidden: Collection[str]) -> list[str]:
    """The problems with each of the `hidden` device ids put in other words: a user limited to
    buildings checks rules against the whole site (a rule may select devices of every building),
    and a problem may name a device of a building they may not see."""
    if not problems or not hidden:
        return problems
    ids = "|".join(re.escape(device) for device in sorted(hidden, key=len, reverse=True))
    named = re.compile(rf"(?<![\w.-])(?:{ids})(?![\w-]|\.\w)")  # a whole id, not a file name
    return [named.sub(OTHER_BUILDING, problem) for problem in problems]


def shown(ctx: ApiContext, problems: list[str], user: User) -> list[str]:
    """The problems as `user` may read them: another building's device named only as such."""
    visible = ctx.visible(user)
    hidden = () if visible is None else [d.id for d in ctx.site.devices if d.id not in visible]
    return redacted(problems, hidden)


def described(rule: Rule, devices: list[str]) -> dict[str, Any]:
    return {
        "id": rule.id,
        "source": rule.source,
        "title": {"zh": rule.spec.title.zh, "en": rule.spec.title.en},
        "priority": rule.spec.priority.value,
        "outcome": rule.spec.outcome,
        "plan": rule.spec.plan,
        "when": rule.spec.when,
        "devices": devices,
    }


router = APIRouter(tags=["rules"])


@router.get("/rules", response_model=list[schemas.RuleInfo])
async def list_rules(ctx: Ctx, user: Engineer) -> list[dict[str, Any]]:
    """The rules running now: where each is defined, what it does and the devices it watches.
    A user limited to buildings gets only the rules that watch one of their devices, each with
    only their devices, so that the list names nothing of the other buildings."""
    visible = ctx.visible(user)
    listed = []
    for rule in ctx.rules.running.rules:
        devices = [d for d in rule.devices if visible is None or d in visible]
        if visible is None or devices:
            listed.append(described(rule, devices))
    return listed


@router.post("/rules/validate", response_model=Checked, openapi_extra=documented(RuleFileText))
async def validate(ctx: Ctx, request: Request, user: Engineer) -> dict[str, Any]:
    """Check a rule file against this site before saving it: its problems, or none. Text that
    is not YAML that can be read safely (a syntax error, an alias past the limits, a Python
    tag) is a 422 naming `text`, with the line. The body (up to 8 MiB: a whole file) is parsed
    off the event loop, as the file is checked. To a user limited to buildings, a problem
    names another building's device only as such."""
    body = await parsed_off_loop(request, RuleFileText)
    try:
        await asyncio.to_thread(parse_yaml, body.text, body.name)
    except ConfigError as exc:  # not YAML that can be read safely (syntax, limits, tags): the field is wrong
        raise Invalid(str(exc), field="text") from None
    problems = await asyncio.to_thread(check_text, ctx.site, body.name, body.text)
    return {"ok": not problems, "problems": shown(ctx, problems, user)}


@router.post("/rules/reload", response_model=Reloaded)
async def reload(ctx: Ctx, user: Engineer) -> dict[str, Any]:
    """Load the rule files again now (they are also reloaded when they change). With problems,
    the running rules stay. Problems are shown as `validate` shows them."""
    problems = await ctx.rules.running.reload()
    return {"ok": not problems, "problems": shown(ctx, problems, user), "loaded": len(ctx.rules.running.rules)}
