"""Photos and files on the steps of an emergency plan, over HTTP: added by duty staff of the plan's
building, checked by their first bytes, kept in the data folder beside the tasks' files and given
back whole; listed on the plan's steps; refused at the edge, unread, past `api.max_attachment_kb`.
The store part runs on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from api.auth import TokenAuth
from facility.errors import NotFound
from facility.netutil import free_port
from facility.store.ops import OpsStore
from facility.store.plans import NewStep, PlanRefused, PlanStore
from facility.store.users import Role, UserStore
from rules.plans import PlanService, step_files
from tests.api.context import without_plant
from tests.api.test_edge import head_of_answer
from tests.reports.conftest import estate_in
from testsupport.servers import Mosquitto
from testsupport.system import TOKEN, running_system, write_site

JPEG = b"\xff\xd8\xff\xe0" + bytes(700)  # the start of a phone's photo
PDF = b"%PDF-1.7\n" + bytes(100)
STEPS = [
    NewStep("call-fire-brigade", "拨打119", "call 119", 60_000_000_000),
    NewStep("evacuate", "疏散", "evacuate", 1),
]


@dataclass
class Desk:
    http: httpx.AsyncClient
    tokens: dict[str, str]
    plan: int  # an open plan instance on pump-1, in B1
    other: int  # one on pump-2, in B2
    files: Path  # the tasks' folder of the data folder
    service: PlanService

    def who(self, name: str, content_type: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.tokens[name]}"}
        return headers | ({"Content-Type": content_type} if content_type else {})


@pytest.fixture
async def desk(ops_store: OpsStore, tmp_path: Path) -> AsyncIterator[Desk]:
    site = estate_in(tmp_path)
    store = PlanStore(ops_store)
    plan, _ = await store.open("fire", ("1号楼火警", "B1 fire"), 1, "pump-1", 1_000, STEPS)
    other, _ = await store.open("fire", ("2号楼火警", "B2 fire"), 2, "pump-2", 1_000, STEPS)
    users = UserStore(ops_store)
    people = (("ana", Role.DUTY, ()), ("bo", Role.DUTY, ("B2",)), ("vi", Role.VIEWER, ()))
    tokens = {name: await users.add(name, role, buildings) for name, role, buildings in people}
    ctx = without_plant(site, ops_store, tmp_path / "journal")
    files = tmp_path / "attachments"
    # The plan service as the runtime makes it: its files in the folder of the tasks' files.
    ctx.rules.plans = PlanService(store, ctx.bus, {}, files=step_files(site, files))
    app = create_app(ctx, TokenAuth({}, users))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://desk") as http:
        yield Desk(http, tokens, plan.id, other.id, files, ctx.rules.plans)


async def test_a_photo_on_a_step_is_kept_listed_on_the_plan_and_given_back(desk: Desk) -> None:
    path = f"/api/v1/plans/{desk.plan}/steps/evacuate/attachments"
    added = await desk.http.post(f"{path}?name=出口.jpg", content=JPEG, headers=desk.who("ana", "image/jpeg"))
    assert added.status_code == 201, added.text
    photo = added.json()
    assert (photo["name"], photo["content_type"], photo["size"], photo["added_by"]) == (
        "出口.jpg",
        "image/jpeg",
        len(JPEG),
        "ana",
    )
    assert photo["url"] == f"{path}/{photo['id']}"
    report = await desk.http.post(f"{path}?name=r.pdf", content=PDF, headers=desk.who("ana", "application/pdf"))
    assert report.status_code == 201

    # On disk, in the data folder beside the tasks' files, named by id.
    kept = desk.files / "plan-steps"
    assert sorted(p.name for p in kept.iterdir()) == sorted([str(photo["id"]), str(report.json()["id"])])
    assert (kept / str(photo["id"])).read_bytes() == JPEG

    # A viewer may look: the list, the file, and the plan whose step lists them.
    listed = await desk.http.get(path, headers=desk.who("vi"))
    assert [a["name"] for a in listed.json()] == ["出口.jpg", "r.pdf"]
    got = await desk.http.get(photo["url"], headers=desk.who("vi"))
    assert got.status_code == 200 and got.content == JPEG and got.headers["content-type"] == "image/jpeg"
    plan = (await desk.http.get(f"/api/v1/plans/{desk.plan}", headers=desk.who("vi"))).json()
    steps = {s["id"]: s for s in plan["steps"]}
    assert steps["call-fire-brigade"]["attachments"] == []
    assert [(a["name"], a["url"]) for a in steps["evacuate"]["attachments"]] == [
        ("出口.jpg", photo["url"]),
        ("r.pdf", report.json()["url"]),
    ]
    # A viewer may not add.
    refused = await desk.http.post(f"{path}?name=x.jpg", content=JPEG, headers=desk.who("vi", "image/jpeg"))
    assert refused.status_code == 403


async def test_wrong_bytes_another_building_and_unknown_steps_are_refused_and_leave_no_file(desk: Desk) -> None:
    path = f"/api/v1/plans/{desk.plan}/steps/evacuate/attachments"
    fake = await desk.http.post(f"{path}?name=x.jpg", content=b"<html>", headers=desk.who("ana", "image/jpeg"))
    assert fake.status_code == 415 and "are not image/jpeg" in fake.json()["detail"]
    text = await desk.http.post(f"{path}?name=a.txt", content=b"hello", headers=desk.who("ana", "text/plain"))
    assert text.status_code == 415 and "'text/plain' is not one a plan step takes" in text.json()["detail"]
    nameless = await desk.http.post(path, content=JPEG, headers=desk.who("ana", "image/jpeg"))
    assert nameless.status_code == 422 and nameless.json()["detail"][0]["loc"] == ["query", "name"]

    # bo works in B2: the B1 plan is none of his, to add to or to read.
    theirs = await desk.http.post(f"{path}?name=x.jpg", content=JPEG, headers=desk.who("bo", "image/jpeg"))
    assert theirs.status_code == 404
    assert (await desk.http.get(path, headers=desk.who("bo"))).status_code == 404
    mine = f"/api/v1/plans/{desk.other}/steps/evacuate/attachments"
    assert (
        await desk.http.post(f"{mine}?name=x.jpg", content=JPEG, headers=desk.who("bo", "image/jpeg"))
    ).status_code == 201
    assert (await desk.http.get(f"{mine}/1", headers=desk.who("ana"))).status_code == 200
    assert (
        await desk.http.get(f"{path}/1", headers=desk.who("ana"))
    ).status_code == 404  # B2's file, asked on B1's plan

    unknown = f"/api/v1/plans/{desk.plan}/steps/no-such-step/attachments"
    assert (
        await desk.http.post(f"{unknown}?name=x.jpg", content=JPEG, headers=desk.who("ana", "image/jpeg"))
    ).status_code == 404
    with pytest.raises(PlanRefused):  # past the route's check, the store refuses it too
        await desk.service.attach(desk.plan, "no-such-step", "x.jpg", "image/jpeg", JPEG, "ana")
    with pytest.raises(NotFound):
        await desk.service.attach(desk.plan + 100, "evacuate", "x.jpg", "image/jpeg", JPEG, "ana")
    assert [p.name for p in (desk.files / "plan-steps").iterdir()] == ["1"]  # bo's alone: no file without its record


async def test_the_edge_refuses_a_step_upload_past_the_attachment_limit_unread(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """Through uvicorn: a step's upload announced past `api.max_attachment_kb` is 413 with only its
    head sent; one past the 1 MiB of other bodies but within the attachment limit reaches the route."""
    site = write_site(tmp_path, mosquitto.url, free_port(), api={"max_attachment_kb": 2048})
    async with running_system(site, tmp_path / "data") as (url, _site):
        head = (
            "POST /api/v1/plans/1/steps/evacuate/attachments?name=big.jpg HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: image/jpeg\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: {2049 * 1024}\r\n\r\n"
        ).encode()
        status, _ = await head_of_answer(url, head + JPEG[:100])
        assert status == 413
        async with httpx.AsyncClient(base_url=url) as http:
            within = await http.post(
                "/api/v1/plans/1/steps/evacuate/attachments",
                params={"name": "ok.jpg"},
                content=JPEG + bytes(1_500_000),
                headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "image/jpeg"},
            )
        assert within.status_code == 404  # past the edge: this system has no plan 1
