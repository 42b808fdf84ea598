"""Equipment records (设备台账) through the API, on SQLite and on PostgreSQL: engineers write them,
everyone reads them, a user limited to buildings sees only their buildings' devices (404 for the
others, as for an unknown one), bad dates are 422 naming the field, a save is audited for the
managers of its building, a device's history lists its alarms' and tasks' entries newest first, and
the ledger downloads as CSV (formulas escaped) and as an Excel workbook holding exactly the devices
the user may see.

The app is the service's own (create_app, every middleware) on a real ops store and users; the
gateway's write and the telemetry history, which these routes never use, fail if called."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest

from api.app import create_app
from api.auth import TokenAuth
from facility.records import NewAlarm, NewTask, TaskKind, TaskStatus
from facility.store.ops import OpsStore
from facility.store.tasks import TaskStore
from facility.store.users import Role, UserStore
from facility.vocabulary import Text
from tests.api.context import without_plant
from tests.reports.conftest import estate_in

TS = 1_800_000_000 * 1_000_000_000
S = 1_000_000_000
USERS = {
    "vic": (Role.VIEWER, ()),
    "eng": (Role.ENGINEER, ()),
    "eng-b1": (Role.ENGINEER, ("B1",)),
    "view-b1": (Role.VIEWER, ("B1",)),
    "m1": (Role.MANAGER, ("B1",)),
    "m2": (Role.MANAGER, ("B2",)),
}
PUMP_1 = {
    "model": "CDLF 32-40",
    "manufacturer": "南方泵业",
    "serial_number": "SN-2021-0042",
    "install_date": "2021-06-01",
    "warranty_end": "2024-05-31",
    "vendor": "otis",
    "contract": "WB-2025-007",
    "contract_end": "2026-12-31",
    "location": "水泵房东侧",
    "notes": "变频器 2023 年更换",
}


@dataclass
class Estate:
    http: httpx.AsyncClient
    tokens: dict[str, str]

    async def ask(self, who: str, method: str, path: str, json: object = None, **params: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        return await self.http.request(method, f"/api/v1{path}", headers=headers, json=json, params=params)

    async def ok(self, who: str, method: str, path: str, json: object = None, **params: str) -> Any:
        answer = await self.ask(who, method, path, json, **params)
        assert answer.status_code == 200, answer.text
        return answer.json() if answer.headers["content-type"].startswith("application/json") else answer


@pytest.fixture
async def estate(ops_store: OpsStore, tmp_path: Path) -> AsyncIterator[Estate]:
    """The estate of tests/reports (B1: pump-1, lift-1 of vendor otis, fire-1; B2: pump-2; G:
    sump-1) and its users."""
    site = estate_in(tmp_path)
    users = UserStore(ops_store)
    tokens = {name: await users.add(name, role, buildings) for name, (role, buildings) in USERS.items()}
    app = create_app(without_plant(site, ops_store, tmp_path / "journal"), TokenAuth({}, users))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://desk") as http:
        yield Estate(http, tokens)


async def test_an_engineer_writes_a_record_that_everyone_reads_and_a_viewer_cannot_write(estate: Estate) -> None:
    blank = await estate.ok("vic", "GET", "/devices/lift-1/record")
    assert blank["written"] is False and blank["model"] == "" and blank["install_date"] is None
    assert blank["vendor"] == "otis" and blank["vendor_name"] == {"zh": "Otis service", "en": "Otis service"}
    assert blank["place"] == {"building": "B1", "floor": "", "room": ""} and blank["system"] == "elevators"

    refused = await estate.ask("vic", "PUT", "/devices/pump-1/record", PUMP_1)
    assert refused.status_code == 403 and "engineer" in refused.json()["detail"]

    saved = await estate.ok("eng", "PUT", "/devices/pump-1/record", PUMP_1)
    read = await estate.ok("vic", "GET", "/devices/pump-1/record")
    assert read == saved
    assert {k: read[k] for k in PUMP_1} == PUMP_1
    assert read["written"] is True and read["updated_by"] == "eng" and read["updated_at"] > 0

    # the whole record is written: a field left out is saved empty
    await estate.ok("eng", "PUT", "/devices/pump-1/record", {"model": "CDLF 32-50"})
    again = await estate.ok("vic", "GET", "/devices/pump-1/record")
    assert again["model"] == "CDLF 32-50" and again["serial_number"] == "" and again["install_date"] is None
    assert again["vendor_name"] is None


async def test_an_engineer_of_one_building_cannot_read_or_write_another_buildings_device(estate: Estate) -> None:
    await estate.ok("eng", "PUT", "/devices/pump-2/record", PUMP_1)
    for method, path, body in (
        ("GET", "/devices/pump-2/record", None),
        ("PUT", "/devices/pump-2/record", {"model": "changed"}),
        ("GET", "/devices/pump-2/history", None),
        ("GET", "/devices/nowhere/record", None),
    ):
        answer = await estate.ask("eng-b1", method, path, body)
        assert answer.status_code == 404, (method, path, answer.text)
    assert (await estate.ok("eng", "GET", "/devices/pump-2/record"))["model"] == PUMP_1["model"]
    await estate.ok("eng-b1", "PUT", "/devices/pump-1/record", {"model": "mine"})


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"install_date": "2021-13-01"}, "install_date"),
        ({"warranty_end": "2021-6-1"}, "warranty_end"),
        ({"contract_end": 20210601}, "contract_end"),
        ({"install_date": "2021-06-01T08:00"}, "install_date"),
        ({"install_date": "2021-06-01", "warranty_end": "2021-05-31"}, "warranty_end"),
        ({"install_date": "2021-06-01", "contract_end": "2020-01-01"}, "contract_end"),
        ({"model": "x" * 201}, "model"),
        ({"location": "x" * 501}, "location"),
        ({"notes": "x" * 4001}, "notes"),
        ({"updated_by": "someone else"}, "updated_by"),
    ],
)
async def test_a_bad_record_is_refused_naming_the_field_and_nothing_is_saved(
    estate: Estate, body: dict[str, object], field: str
) -> None:
    answer = await estate.ask("eng", "PUT", "/devices/pump-1/record", body)
    assert answer.status_code == 422, answer.text
    assert [e["loc"] for e in answer.json()["detail"]] == [["body", field]]
    assert (await estate.ok("eng", "GET", "/devices/pump-1/record"))["written"] is False


async def test_a_save_is_audited_for_the_managers_of_its_building(estate: Estate) -> None:
    await estate.ok("eng", "PUT", "/devices/pump-1/record", PUMP_1)
    await estate.ask("eng-b1", "PUT", "/devices/pump-2/record", PUMP_1)  # refused: not hers

    def saves(entries: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
        return [(e["actor"], e["target"], e["outcome"]) for e in entries if e["action"].endswith("/record")]

    assert saves(await estate.ok("m1", "GET", "/audit")) == [("eng", "/api/v1/devices/pump-1/record", "ok")]
    assert saves(await estate.ok("m2", "GET", "/audit")) == [("eng-b1", "/api/v1/devices/pump-2/record", "refused")]


async def test_the_history_lists_the_devices_alarms_tasks_and_service_newest_first_in_pages(
    estate: Estate, ops_store: OpsStore
) -> None:
    alarm, _ = await ops_store.alarms.raise_alarm(
        NewAlarm("low-pressure", "pump-1", "high", "压力低", "low pressure", "", "", TS)
    )
    await ops_store.alarms.acknowledge(alarm.id, "ana", "10.0.0.1", TS + 1 * S)
    await ops_store.alarms.return_to_normal("low-pressure", "pump-1", TS + 2 * S)
    tasks = TaskStore(ops_store)
    task = await tasks.create(
        NewTask(
            Text("换密封", "replace the seal"),
            TaskKind.REPAIR,
            "high",
            TS + 9 * S,
            TS + 3 * S,
            "ana",
            device_id="pump-1",
        )
    )
    await tasks.assign(task.id, "li", "ana", "", TS + 4 * S)
    await tasks.set_status(task.id, TaskStatus.IN_PROGRESS, "li", "", TS + 5 * S)
    await ops_store.alarms.set_out_of_service("pump-1", True, "li", "", "seal replacement", TS + 6 * S)
    # of other devices, or of none: not in pump-1's history
    await ops_store.alarms.raise_alarm(
        NewAlarm("low-pressure", "pump-2", "high", "压力低", "low pressure", "", "", TS + 7 * S)
    )
    await tasks.create(NewTask(Text("噪音", "noise"), TaskKind.COMPLAINT, "low", TS + 9 * S, TS + 8 * S, "ana"))

    page = await estate.ok("vic", "GET", "/devices/pump-1/history")
    lines = [(e["kind"], e["action"], e["actor"]) for e in page["items"]]
    assert lines == [
        ("device", "out of service", "li"),
        ("task", "status", "li"),
        ("task", "assigned", "ana"),
        ("task", "created", "ana"),
        ("alarm", "returned to normal", "rules"),
        ("alarm", "acknowledged", "ana"),
        ("alarm", "raised", "rules"),
    ]
    assert page["total"] == 7
    first = page["items"][0]
    assert first["detail"] == "seal replacement" and first["id"] is None
    assert page["items"][1]["id"] == task.id and page["items"][1]["title"] == {
        "zh": "换密封",
        "en": "replace the seal",
    }
    assert page["items"][-1]["id"] == alarm.id and page["items"][-1]["priority"] == "high"

    second = await estate.ok("vic", "GET", "/devices/pump-1/history", limit="3", offset="3")
    assert [(e["kind"], e["action"]) for e in second["items"]] == [
        ("task", "created"),
        ("alarm", "returned to normal"),
        ("alarm", "acknowledged"),
    ]
    assert second["total"] == 7 and second["limit"] == 3 and second["offset"] == 3


async def test_the_ledger_downloads_as_csv_with_exactly_the_visible_devices_and_formulas_escaped(
    estate: Estate,
) -> None:
    await estate.ok("eng", "PUT", "/devices/pump-1/record", {**PUMP_1, "notes": '=HYPERLINK("http://x")'})
    await estate.ok("eng", "PUT", "/devices/pump-2/record", PUMP_1)

    answer = await estate.ok("view-b1", "GET", "/equipment", format="csv", lang="zh")
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["content-disposition"].startswith('attachment; filename="equipment-estate-')
    assert answer.headers["content-disposition"].endswith('-zh.csv"')
    rows = list(csv.reader(io.StringIO(answer.text.lstrip("\ufeff"))))
    head, *lines = rows
    assert head[:4] == ["栏目", "设备编号", "设备名称", "设备类型"]
    assert [line[1] for line in lines] == ["pump-1", "lift-1", "fire-1"]  # B1's, in the site file's order
    pump = dict(zip(head, lines[0], strict=True))
    assert pump["型号"] == "CDLF 32-40" and pump["安装日期"] == "2021-06-01" and pump["质保到期"] == "2024-05-31"
    assert pump["维保单位"] == "Otis service" and pump["楼栋"] == "B1" and pump["最后修改人"] == "eng"
    assert pump["备注"] == '\'=HYPERLINK("http://x")'  # text, never a formula
    lift = dict(zip(head, lines[1], strict=True))
    assert lift["维保单位"] == "Otis service" and lift["型号"] == ""  # the site file's vendor, nothing written

    everyone = await estate.ok("vic", "GET", "/equipment", format="csv", lang="en")
    head, *lines = list(csv.reader(io.StringIO(everyone.text.lstrip("\ufeff"))))
    assert head[1:3] == ["Device id", "Name"] and "Serial number" in head
    assert [line[1] for line in lines] == ["pump-1", "pump-2", "lift-1", "fire-1", "sump-1"]


async def test_the_ledger_downloads_as_a_workbook_that_holds_the_dates(estate: Estate) -> None:
    await estate.ok("eng", "PUT", "/devices/pump-1/record", PUMP_1)

    answer = await estate.ok("view-b1", "GET", "/equipment", format="xlsx", lang="en")
    assert answer.headers["content-type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    book = openpyxl.load_workbook(io.BytesIO(answer.content))
    sheet = book[book.sheetnames[-1]]
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    start = next(i for i, row in enumerate(values) if row[0] == "Device id")
    head = values[start]
    devices = [row for row in values[start + 1 :] if row[0]]
    assert [row[0] for row in devices] == ["pump-1", "lift-1", "fire-1"]
    pump = dict(zip(head, devices[0], strict=False))
    # Days as Excel dates (they sort and compare), not texts that look like them.
    assert pump["Installed"] == datetime(2021, 6, 1) and pump["Warranty ends"] == datetime(2024, 5, 31)
    assert pump["Contract ends"] == datetime(2026, 12, 31) and pump["Manufacturer"] == "南方泵业"
    installed = sheet.cell(start + 2, head.index("Installed") + 1)
    assert installed.is_date and installed.number_format == "yyyy-mm-dd"

    bad = await estate.ask("vic", "GET", "/equipment", format="pdf")
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "format"]
