"""GET /api/v1/reports/...: each report in each format, limited to the buildings of a user limited
to buildings, and a 422 naming the parameter for a bad date, month, time or format.

The app here mounts the reports routes alone, on a real ops store and users; the gateway's write and
the telemetry history, which reports never use, are stand-ins that fail if called."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from openpyxl import load_workbook

from api.auth import Role, TokenAuth
from api.deps import current_user
from api.errors import handle_errors
from api.routes import reports as report_routes
from facility.site import Site
from facility.store.ops import OpsStore
from facility.store.users import UserStore
from tests.api.context import without_plant
from tests.reports.conftest import Seed, seed_october


@pytest.fixture
async def http(
    site: Site, store: OpsStore, seed: Seed, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    """A client of the reports routes, and tokens of a viewer of the whole site and one of B1."""
    await seed_october(seed)
    users = UserStore(store)
    tokens = {"all": await users.add("ana", Role.VIEWER), "b1": await users.add("bo", Role.VIEWER, ["B1"])}
    ctx = without_plant(site, store, tmp_path / "journal")
    auth = TokenAuth({}, users)
    app = FastAPI()
    app.state.ctx, app.state.auth = ctx, auth  # what api.deps gives the routes
    handle_errors(app)
    app.include_router(report_routes.router, prefix="/api/v1", dependencies=[Depends(current_user)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://desk") as client:
        yield client, tokens


async def get(http: tuple[httpx.AsyncClient, dict[str, str]], path: str, who: str = "all") -> httpx.Response:
    client, tokens = http
    return await client.get(f"/api/v1/reports/{path}", headers={"Authorization": f"Bearer {tokens[who]}"})


def summary(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    data = response.json()
    return {f["key"]: f["value"] for f in next(s for s in data["sections"] if s["key"] == "summary")["figures"]}


async def test_each_report_as_json_and_a_building_limited_user_gets_their_buildings(http: Any) -> None:
    assert summary(await get(http, "briefing?date=2026-10-05"))["alarms"] == 2
    limited = await get(http, "briefing?date=2026-10-05", "b1")
    assert summary(limited)["alarms"] == 1 and summary(limited)["tasks_opened"] == 1  # the complaint is site-wide
    assert limited.json()["buildings"] == ["B1"] and limited.json()["devices"] == ["fire-1", "lift-1", "pump-1"]
    assert summary(await get(http, "handover?since=2026-10-05T09:00:00%2B08:00"))["alarms_raised"] == 2
    assert summary(await get(http, "handover?since=2026-10-05T10:30", "b1"))["alarms_raised"] == 0  # local time
    monthly = summary(await get(http, "monthly?month=2026-10"))
    assert monthly["mtta"] == 4 * 60 * 10**9 and monthly["alarms"] == 2


async def test_each_format_comes_with_its_media_type_and_language(http: Any) -> None:
    page = await get(http, "monthly?month=2026-10&format=html&lang=en")
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "<svg" in page.text and "Mean time to acknowledge" in page.text and "<script" not in page.text
    markdown = await get(http, "monthly?month=2026-10&format=md")
    assert markdown.headers["content-type"] == "text/markdown; charset=utf-8"
    assert "| 平均确认时间 | 4分 |" in markdown.text
    table = await get(http, "briefing?date=2026-10-05&format=csv&lang=en")
    assert table.headers["content-type"] == "text/csv; charset=utf-8"
    assert table.text.startswith("\ufeffsection,measure,value,benchmark\r\nSummary,Alarms raised,2,")
    assert json.loads((await get(http, "briefing?date=2026-10-05&format=json")).text)["kind"] == "briefing"


@pytest.mark.parametrize(
    ("path", "field", "message"),
    [
        ("briefing?date=2026-13-01", "date", None),
        ("monthly?month=2026-13", "month", "2026-13 is not a month"),
        ("monthly?month=2099-01", "month", "2099-01 has not begun"),
        ("monthly?month=202610", "month", None),
        ("handover?since=yesterday", "since", None),
        ("handover?since=2099-01-01T08:00", "since", None),
        ("briefing?format=pdf", "format", None),
        ("briefing?lang=fr", "lang", None),
    ],
)
async def test_a_bad_parameter_is_a_422_naming_it(http: Any, path: str, field: str, message: str | None) -> None:
    response = await get(http, path)
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["query", field]
    if message is not None:
        assert error["msg"] == message


async def test_a_report_needs_a_token(http: Any) -> None:
    client, _ = http
    assert (await client.get("/api/v1/reports/briefing")).status_code == 401


async def test_an_excel_report_comes_as_a_named_download(http: Any) -> None:
    response = await get(http, "briefing?date=2026-10-05&format=xlsx&lang=zh")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert response.headers["content-disposition"] == 'attachment; filename="briefing-estate-2026-10-05-0000-zh.xlsx"'
    book = load_workbook(io.BytesIO(response.content))
    assert book.sheetnames[:2] == ["报告", "概要"] and book["概要"]["B2"].value == 2  # alarms raised, a number
