"""The ops store while its database is really down (PostgreSQL behind a proxy that is cut, SQLite
whose folder is gone): it starts without it and prepares the schema when it answers, says it is
down in its readiness, and raises OpsUnavailable rather than a driver's error, which the API
answers with 503 naming the ops store, while the fixed admin token keeps working."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from api.auth import TokenAuth
from facility.readiness import State
from facility.records import NewAlarm
from facility.store.ops import OpsStore, OpsUnavailable
from facility.store.tasks import TaskStore
from facility.store.users import Role, UserStore
from tests.api.context import without_plant
from tests.rules.conftest import RULES, write_site
from testsupport.proxy import Outage, outage
from testsupport.system import eventually

ADMIN = "admin-token-0123456789"
WAIT_S = 15.0


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Outage]:
    async with outage(request.param, tmp_path) as found:
        yield found


def new_alarm(ts: int) -> NewAlarm:
    return NewAlarm("low-pressure", "pump-1", "high", "压力低", "low pressure", "", "", ts)


async def answers(store: OpsStore) -> bool:
    return store.available


async def test_a_store_started_without_waiting_prepares_itself_when_its_database_answers(db: Outage) -> None:
    await db.cut()
    store = OpsStore(db.url, site="t")
    try:
        await store.start(wait=False)  # returns at once, the database being down
        assert not store.available
        with pytest.raises(OpsUnavailable, match=r"the ops store .* does not answer"):
            await store.alarms.list_alarms()
        with pytest.raises(OpsUnavailable):
            await UserStore(store).find("some-token")
        with pytest.raises(OpsUnavailable):
            await TaskStore(store).list(0)
        await eventually(lambda: answers_down(store), WAIT_S)

        await db.restore()
        await eventually(lambda: answers(store), WAIT_S)  # the watcher reached it and made the schema
        assert await store.alarms.list_alarms() == []
        (part,) = store.parts()
        assert (part.kind, part.state, part.detail) == ("ops_store", State.UP, "")
        assert part.last_success_ns is not None
    finally:
        await store.close()


async def answers_down(store: OpsStore) -> bool:
    """Its readiness says it is down, and why (the watcher has tried it)."""
    (part,) = store.parts()
    return part.state is State.DOWN and "does not answer" in part.detail and "not reached yet" not in part.detail


async def test_a_store_whose_database_goes_away_raises_ops_unavailable_and_works_when_it_is_back(
    tmp_path: Path,
) -> None:
    async with outage("postgresql", tmp_path) as db:  # cut while connections are open: PostgreSQL only
        store = OpsStore(db.url, site="t")
        await store.start()
        try:
            await store.alarms.raise_alarm(new_alarm(1))
            await db.cut()
            with pytest.raises(OpsUnavailable, match="does not answer"):
                await store.alarms.list_alarms()
            assert not store.available
            (part,) = store.parts()
            assert part.state is State.DOWN and part.last_success_ns is not None

            await db.restore()
            (alarm,) = await store.alarms.list_alarms()  # at once: no dead pooled connection is handed out
            assert alarm.rule == "low-pressure" and store.available
        finally:
            await store.close()


async def test_the_api_answers_503_naming_the_ops_store_and_the_admin_token_still_works(
    db: Outage, tmp_path: Path
) -> None:
    first = OpsStore(db.url, site="t")
    await first.start()
    duty = await UserStore(first).add("dora", Role.DUTY)
    await first.close()
    await db.cut()

    (tmp_path / "site").mkdir()
    site = write_site(tmp_path / "site", RULES)
    ops = OpsStore(db.url, site="t")
    await ops.start(wait=False)
    app = create_app(without_plant(site, ops, tmp_path / "journal"), TokenAuth({ADMIN: "admin"}, UserStore(ops)))
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://desk") as client:

            async def get(path: str, token: str) -> httpx.Response:
                return await client.get(path, headers={"Authorization": f"Bearer {token}"})

            listed = await get("/api/v1/alarms", ADMIN)
            assert listed.status_code == 503 and "ops store" in listed.json()["detail"]
            assert listed.headers["retry-after"].isdigit()
            me = await get("/api/v1/me", ADMIN)  # in memory: no store needed
            assert me.status_code == 200 and me.json()["name"] == "admin"
            user = await get("/api/v1/me", duty)
            assert user.status_code == 503 and "ops store" in user.json()["detail"]  # neither 401 nor 500

            await db.restore()
            await eventually(lambda: answers(ops), WAIT_S)
            assert (await get("/api/v1/me", duty)).json()["name"] == "dora"
            assert (await get("/api/v1/alarms", ADMIN)).status_code == 200
    finally:
        await ops.close()
