"""The words of a point's values reach the desk: GET /api/v1/devices and /devices/{id} give each
point the `value_labels` its profile's `values:` gives ({value: {zh, en}}, `{}` where none), for a
profile a site adds (the chiller of docs/devices.md) as for a built-in one (the fire panel's
`fire` is 火警), and the OpenAPI document says so. The live values are the real in-memory store
the gateway feeds; the app is the real one, without a plant behind it (tests/api/context.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.auth import Role, TokenAuth
from facility.model import Quality, Reading, now_ns
from facility.site import load_site
from facility.store.ops import OpsStore
from facility.store.users import UserStore
from tests.api.conftest import Accounts
from tests.api.context import without_plant
from tests.chiller_site import chiller_site

Client = tuple[httpx.AsyncClient, dict[str, str]]
READINGS = [
    ("chiller-1", "mode", "defrost"),
    ("chiller-1", "compressor_running", False),
    ("chiller-1", "supply_temp", 7.25),
    ("fire-1", "zone_3_state", "fire"),
]


@pytest.fixture
async def http(tmp_path: Path, accounts: Accounts) -> AsyncIterator[Client]:
    """A client of the app on the chiller site with live values, and tokens of a viewer of the
    whole site and of one limited to building B2 (both devices are in B1)."""
    site = load_site(chiller_site(tmp_path))
    tokens = await accounts.add_many([("duty", Role.VIEWER, ()), ("b2", Role.VIEWER, ("B2",))])
    store = OpsStore(f"sqlite+aiosqlite:///{accounts.data / 'ops.db'}", site="t")
    await store.start()
    ctx = without_plant(site, store, tmp_path / "journal")
    ctx.live.update([Reading(device, point, value, Quality.GOOD, now_ns()) for device, point, value in READINGS])
    app = create_app(ctx, TokenAuth({}, UserStore(store)))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://desk") as client:
            yield client, tokens
    finally:
        await store.close()


async def get(http: Client, path: str, who: str | None = "duty") -> httpx.Response:
    client, tokens = http
    headers = {"Authorization": f"Bearer {tokens[who]}"} if who else {}
    return await client.get(f"/api/v1{path}", headers=headers)


async def test_each_point_carries_the_words_of_its_values(http: Client) -> None:
    response = await get(http, "/devices")
    assert response.status_code == 200, response.text
    devices: dict[str, Any] = {d["id"]: d for d in response.json()}
    chiller, fire = devices["chiller-1"]["points"], devices["fire-1"]["points"]
    assert chiller["mode"]["value"] == "defrost"
    assert chiller["mode"]["value_labels"]["defrost"] == {"zh": "除霜", "en": "defrosting"}
    assert set(chiller["mode"]["value_labels"]) == {"stopped", "cooling", "defrost", "off"}
    running = chiller["compressor_running"]
    assert running["value"] is False and running["value_labels"]["false"] == {"zh": "停止", "en": "stopped"}
    assert chiller["supply_temp"] == {**chiller["supply_temp"], "value": 7.25, "value_labels": {}}
    assert fire["zone_3_state"]["value"] == "fire"
    assert fire["zone_3_state"]["value_labels"]["fire"] == {"zh": "火警", "en": "fire"}
    assert fire["fire_count"]["value_labels"] == {}

    one = await get(http, "/devices/chiller-1")
    assert one.status_code == 200
    assert {name: p["value_labels"] for name, p in one.json()["points"].items()} == {
        name: p["value_labels"] for name, p in chiller.items()
    }


async def test_the_words_are_behind_the_token_and_the_building_limit(http: Client) -> None:
    assert (await get(http, "/devices", who=None)).status_code == 401
    assert (await get(http, "/devices", who="b2")).json() == []
    assert (await get(http, "/devices/chiller-1", who="b2")).status_code == 404


async def test_the_openapi_document_describes_value_labels(http: Client) -> None:
    client, _ = http
    schemas = (await client.get("/api/openapi.json")).json()["components"]["schemas"]
    field = schemas["LivePoint"]["properties"]["value_labels"]
    words = schemas[field["additionalProperties"]["$ref"].rsplit("/", 1)[1]]
    assert set(words["required"]) == {"zh", "en"}
    assert "values:" in field["description"] and "true" in field["description"]
