"""GET /api/v1/dead-letters on the running system: engineers and above read the input the system
could not use, newest first, in pages, by source and since; a user limited to buildings sees only
the letters of their buildings' devices, never those that name no device. The query itself runs on
SQLite and on PostgreSQL."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import openpyxl

from facility.model import now_ns
from facility.mqtt import MqttClient
from facility.netutil import free_port
from facility.records import DeadLetter
from facility.site import load_site
from facility.store.dead_letters import LetterFilter, LetterKeys, letter_page
from facility.store.ops import OpsStore
from facility.store.users import Role
from tests.api.conftest import Accounts
from tests.letters import seed
from testsupport.servers import Mosquitto
from testsupport.system import eventually, running_system, write_site

HOUR = 3600 * 1_000_000_000
V1 = "/api/v1/dead-letters"


def seeded(now: int) -> list[DeadLetter]:
    """Letters of each kind, oldest first: of pump-1 (building B2), of lift-1 (B1, by its status
    topic), and of no device (a webhook, a topic no device has)."""
    return [
        DeadLetter(now - 4 * HOUR, "modbus", "pump-1/outlet_pressure", "illegal data address", ""),
        DeadLetter(now - 3 * HOUR, "mqtt", "test/lifts/status", "status is neither online nor offline", "maybe"),
        DeadLetter(now - 2 * HOUR, "webhook", "pump-1_hook", "HTTP 500", '{"device": "pump-1"}'),
        DeadLetter(now - HOUR, "mqtt", "test/other/thing", "no device has this topic", "{}"),
    ]


def keys_of(page: dict[str, Any]) -> list[str]:
    return [item["key"] for item in page["items"]]


async def test_engineers_page_filter_and_see_only_their_buildings_letters(
    tmp_path: Path, mosquitto: Mosquitto, accounts: Accounts
) -> None:
    site, data = write_site(tmp_path, mosquitto.url, free_port()), tmp_path / "data"
    now = now_ns()
    await seed(data, site, seeded(now))
    tokens = await accounts.add_many(
        [
            ("vic", Role.VIEWER, ()),
            ("dana", Role.DUTY, ()),
            ("erin", Role.ENGINEER, ()),
            ("bo", Role.ENGINEER, ("B1",)),
        ]
    )

    async with running_system(site, data) as (url, _site), httpx.AsyncClient(base_url=url) as http:

        async def get(user: str, **params: Any) -> httpx.Response:
            return await http.get(V1, params=params, headers={"Authorization": f"Bearer {tokens[user]}"})

        for user, role in (("vic", "viewer"), ("dana", "duty")):
            refused = await get(user)
            assert refused.status_code == 403
            assert refused.json()["detail"] == f"this needs the role engineer or above; {user} is {role}"

        publisher = MqttClient("127.0.0.1", mosquitto.port)
        await publisher.start()
        try:
            publisher.publish("test/lifts/lift-1", b"{not json", qos=1)

            async def five() -> dict[str, Any] | None:
                page = (await get("erin")).json()
                return page if page["total"] == 5 else None

            everything = await eventually(five, timeout=15)
        finally:
            await publisher.stop()

        newest = everything["items"][0]
        assert (newest["source"], newest["key"], newest["device"]) == ("mqtt", "test/lifts/lift-1", "lift-1")
        assert newest["reason"].startswith("not JSON") and newest["payload"] == "{not json"
        assert keys_of(everything)[1:] == [
            "test/other/thing",
            "pump-1_hook",
            "test/lifts/status",
            "pump-1/outlet_pressure",
        ]
        assert [item["device"] for item in everything["items"]] == ["lift-1", None, None, "lift-1", "pump-1"]
        ids = [item["id"] for item in everything["items"]]
        assert ids == sorted(ids, reverse=True)

        first, second = (await get("erin", limit=2)).json(), (await get("erin", limit=2, offset=2)).json()
        assert (first["total"], first["limit"], first["offset"]) == (5, 2, 0)
        assert keys_of(first) + keys_of(second) == keys_of(everything)[:4]

        mqtt = (await get("erin", source="mqtt")).json()
        assert keys_of(mqtt) == ["test/lifts/lift-1", "test/other/thing", "test/lifts/status"]
        both = (await get("erin", source=["modbus", "webhook"])).json()
        assert keys_of(both) == ["pump-1_hook", "pump-1/outlet_pressure"]
        since = datetime.fromtimestamp((now - 2 * HOUR - HOUR // 2) / 1e9, UTC).isoformat()
        recent = (await get("erin", since=since)).json()
        assert keys_of(recent) == ["test/lifts/lift-1", "test/other/thing", "pump-1_hook"]

        limited = (await get("bo")).json()  # building B1: lift-1's letters, none of pump-1 or of no device
        assert keys_of(limited) == ["test/lifts/lift-1", "test/lifts/status"] and limited["total"] == 2

        wrong = await get("erin", source="serial")
        assert wrong.status_code == 422 and wrong.json()["detail"][0]["loc"] == ["query", "source", 0]

        # The same list as a file: every letter the filters match, under the same limits.
        async def export(user: str, **params: Any) -> httpx.Response:
            auth = {"Authorization": f"Bearer {tokens[user]}"}
            return await http.get(f"{V1}/export", params=params, headers=auth)

        assert (await export("dana")).status_code == 403
        book = openpyxl.load_workbook(io.BytesIO((await export("erin", source="mqtt", lang="zh")).content))
        rows = [[c.value for c in row] for row in book[book.sheetnames[-1]].iter_rows()]
        head = next(i for i, row in enumerate(rows) if row[0] == "编号")
        listed = [dict(zip(rows[head], row, strict=False)) for row in rows[head + 1 :] if row[0]]
        assert [row["主题或测点"] for row in listed] == keys_of(mqtt)
        assert listed[0]["来源"] == "MQTT 报文" and listed[0]["设备"] and listed[0]["原始内容"] == "{not json"
        assert isinstance(listed[0]["时间"], datetime)  # an Excel time, in site time
        lines = (await export("bo", format="csv", lang="en")).content.decode("utf-8-sig").splitlines()
        assert sum("test/lifts/" in line for line in lines) == 2 and "pump-1" not in "".join(lines)


async def test_the_building_scope_matches_keys_by_device_exactly(ops_store: OpsStore, tmp_path: Path) -> None:
    """`pump-1/` is not `pump-10/`, and an id's `_` is a character, not SQL's one-character wildcard."""
    site = load_site(
        write_site(
            tmp_path,
            "mqtt://127.0.0.1:1",
            free_port(),
            extra="""
  - id: pump-10
    profile: booster_pump
    location: {building: B2}
    modbus: {host: 127.0.0.1, port: 1, unit: 2}
  - id: pump_1
    profile: booster_pump
    location: {building: B2}
    modbus: {host: 127.0.0.1, port: 1, unit: 3}
  - id: pumpx1
    profile: booster_pump
    location: {building: B2}
    modbus: {host: 127.0.0.1, port: 1, unit: 4}
""",
        )
    )
    now = now_ns()
    await ops_store.letters.add(
        [
            DeadLetter(now, "modbus", "pump-10/outlet_pressure", "bad", ""),
            DeadLetter(now, "telemetry", "pump-1/outlet_pressure", "refused", ""),
            DeadLetter(now, "modbus", "pumpx1/outlet_pressure", "bad", ""),
            DeadLetter(now, "modbus", "pump_1/outlet_pressure", "bad", ""),
            DeadLetter(now, "mqtt", "pump-1/outlet_pressure", "a topic that only looks like a key", ""),
        ]
    )
    keys = LetterKeys(site)
    letters, total = await letter_page(ops_store, LetterFilter(scope=keys.naming({"pump-1"})), 10, 0)
    assert [(d.source, d.key) for d in letters] == [("telemetry", "pump-1/outlet_pressure")] and total == 1
    letters, total = await letter_page(ops_store, LetterFilter(scope=keys.naming(set())), 10, 0)
    assert letters == [] and total == 0
    letters, total = await letter_page(ops_store, LetterFilter(scope=keys.naming({"pump_1"})), 10, 0)
    assert [d.key for d in letters] == ["pump_1/outlet_pressure"] and total == 1
