"""/api/v1/rules against hostile input and limited users: a rule file built to exhaust memory or
the stack, or naming Python objects, is answered with its problems (never a 500, in milliseconds);
a file name that is not one file name is a 422 naming `name`; and an engineer limited to buildings
lists only the rules of their devices, with only their devices.

The app is the real one (create_app) on a real site, rules service and users, without a plant
behind it (tests/api/context.py): the gateway's write and the telemetry history fail if called."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.auth import Role, TokenAuth
from api.routes.rules import OTHER_BUILDING, redacted
from facility.site import load_site
from facility.store.ops import OpsStore
from facility.store.users import UserStore
from facility.yamlfile import MAX_ALIASES, MAX_DEPTH, MAX_NODES
from tests.api.conftest import Accounts
from tests.api.context import without_plant
from tests.facility.test_yamlfile import LAUGHS
from tests.reports.conftest import RULES, SITE  # an estate of three buildings and four rules

Client = tuple[httpx.AsyncClient, dict[str, str]]


@pytest.fixture
async def http(tmp_path: Path, accounts: Accounts) -> AsyncIterator[Client]:
    """A client of the app, and tokens of engineers of the whole site, of B1, and of B2 and G."""
    (tmp_path / "rules.yaml").write_text(RULES)
    (tmp_path / "site.yaml").write_text(SITE)
    site = load_site(tmp_path / "site.yaml")
    tokens = await accounts.add_many(
        [("all", Role.ENGINEER, ()), ("b1", Role.ENGINEER, ("B1",)), ("b2g", Role.ENGINEER, ("B2", "G"))]
    )
    store = OpsStore(f"sqlite+aiosqlite:///{accounts.data / 'ops.db'}", site="t")
    await store.start()
    app = create_app(without_plant(site, store, tmp_path / "journal"), TokenAuth({}, UserStore(store)))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://desk") as client:
            yield client, tokens
    finally:
        await store.close()


async def call(http: Client, method: str, path: str, who: str = "all", **kw: Any) -> httpx.Response:
    client, tokens = http
    return await client.request(method, f"/api/v1{path}", headers={"Authorization": f"Bearer {tokens[who]}"}, **kw)


async def listed(http: Client, who: str) -> dict[str, list[str]]:
    response = await call(http, "GET", "/rules", who)
    assert response.status_code == 200, response.text
    return {rule["id"]: rule["devices"] for rule in response.json()}


async def test_an_engineer_limited_to_buildings_lists_the_rules_of_their_devices_only(http: Client) -> None:
    assert await listed(http, "all") == {
        "device-offline": ["pump-1", "pump-2", "lift-1", "fire-1", "sump-1"],
        "low-pressure": ["pump-1", "pump-2"],
        "entrapment": ["lift-1"],
        "sump-high": ["sump-1"],
    }
    assert await listed(http, "b1") == {
        "device-offline": ["pump-1", "lift-1", "fire-1"],
        "low-pressure": ["pump-1"],
        "entrapment": ["lift-1"],
    }
    assert await listed(http, "b2g") == {
        "device-offline": ["pump-2", "sump-1"],
        "low-pressure": ["pump-2"],
        "sump-high": ["sump-1"],
    }


HOSTILE = {
    "billion laughs": (
        LAUGHS.replace("site: {id: t}\n", "rules: []\n").replace("devices: []\n", ""),
        2,
        f"more than {MAX_NODES:,} values",
    ),
    "too many aliases": ("a: &a x\nb:\n" + "  - *a\n" * (MAX_ALIASES + 1), 3 + MAX_ALIASES, "aliases"),
    "an alias inside itself": ("rules:\n  - &a [*a]\n", 2, "an alias inside the value it names"),
    "nesting 10,000 deep": ("rules: " + "[" * 10_000 + "]" * 10_000 + "\n", 1, f"nested more than {MAX_DEPTH}"),
    "a Python name": ("rules:\n  - !!python/name:os.system echo\n", 2, "tag:yaml.org,2002:python/name:os.system"),
    "a Python call": ("rules: !!python/object/apply:os.system [echo hi]\n", 1, "python/object/apply"),
}


@pytest.mark.parametrize("case", HOSTILE)
async def test_a_hostile_rule_file_is_a_422_naming_the_text_and_its_line_quickly(http: Client, case: str) -> None:
    text, line, words = HOSTILE[case]
    started = time.monotonic()
    response = await call(http, "POST", "/rules/validate", json={"text": text, "name": "evil.yaml"})
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "text"]
    assert error["msg"].startswith(f"evil.yaml:{line}: ") and words in error["msg"], error
    assert time.monotonic() - started < 5  # the billion laughs took 5 s and 300 MB before the limits


@pytest.mark.parametrize("name", [".", "..", ".hidden.yaml", "a/b.yaml", "../rules.yaml", ""])
async def test_a_name_that_is_not_one_plain_file_name_is_a_422_naming_it(http: Client, name: str) -> None:
    response = await call(http, "POST", "/rules/validate", json={"text": "rules: []\n", "name": name})
    assert response.status_code == 422, response.text
    assert [error["loc"] for error in response.json()["detail"]] == [["body", "name"]]


async def test_a_plain_file_name_is_named_in_the_problems(http: Client) -> None:
    response = await call(http, "POST", "/rules/validate", json={"text": "rules: 1\n", "name": "lifts..v2.yml"})
    assert response.status_code == 200, response.text
    assert [p.split(":")[:2] for p in response.json()["problems"]] == [["lifts..v2.yml", "1"]]


async def test_a_text_that_is_not_unicode_is_a_422_naming_it(http: Client) -> None:
    client, tokens = http
    raw = b'{"text": "rules: []\\n# \\ud800\\n", "name": "x.yaml"}'  # JSON may escape half a surrogate pair
    headers = {"Authorization": f"Bearer {tokens['all']}", "Content-Type": "application/json"}
    response = await client.post("/api/v1/rules/validate", content=raw, headers=headers)
    assert response.status_code == 422, response.text
    assert [error["loc"] for error in response.json()["detail"]] == [["body", "text"]]


def test_a_problem_names_another_buildings_device_only_as_such() -> None:
    """What /rules/validate and /rules/reload answer a user limited to buildings: an id of a device
    they may not see is replaced whole (not inside a longer id, nor a file name), others stay."""
    problems = [
        "rules.yaml:7: rules[0].devices.ids[1]: pump-2 has no point 'level'",
        "rules.yaml:9: rules[1].when: pump-1 and pump-20 differ from pump-2.yaml",
    ]
    assert redacted(problems, ["pump-2"]) == [
        f"rules.yaml:7: rules[0].devices.ids[1]: {OTHER_BUILDING} has no point 'level'",
        "rules.yaml:9: rules[1].when: pump-1 and pump-20 differ from pump-2.yaml",
    ]
    assert redacted(problems, []) == problems
