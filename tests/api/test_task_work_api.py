"""Work orders that mean it, over HTTP: a task is verified only with its checklist done unless a
manager gives a reason, it goes only to the site's people, teams or vendors, and it carries photos
and files that whoever may see it can download."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from typer.testing import CliRunner

from api.app import create_app
from api.auth import TokenAuth
from facility.netutil import free_port
from facility.records import NewTask, TaskKind
from facility.store.ops import OpsStore
from facility.store.tasks import TaskStore
from facility.store.users import Role, UserStore
from facility.vocabulary import Text
from facility_app.cli import app
from rules.tasks import TaskService
from tests.api.context import without_plant
from tests.reports.conftest import estate_in
from testsupport.servers import Mosquitto
from testsupport.system import running_system, write_site

TS = 1_800_000_000 * 1_000_000_000

PEOPLE = """\
vendors:
  - {id: lifts-co, name: 电梯维保公司 / Lift service}
"""  # with the people of tests/system.py's estate (li, wu)


def add_user(site: Path, data: Path, name: str, role: str) -> str:
    """A user of `role` made with `facility users add`; their token."""
    result = CliRunner().invoke(app, ["users", "add", name, "--role", role, "--site", str(site), "--data", str(data)])
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip().partition(": ")[2]


async def test_verify_needs_the_checklist_done_or_a_manager_reason_and_assignees_are_known(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    site, data = write_site(tmp_path, mosquitto.url, free_port(), extra=PEOPLE), tmp_path / "data"
    duty = await asyncio.to_thread(add_user, site, data, "duty-wang", "duty")
    manager = await asyncio.to_thread(add_user, site, data, "manager-zhou", "manager")
    async with running_system(site, data) as (url, _site), httpx.AsyncClient(base_url=f"{url}/api/v1") as http:
        as_duty = {"Authorization": f"Bearer {duty}"}
        as_manager = {"Authorization": f"Bearer {manager}"}

        choices = await http.get("/tasks/assignees", headers=as_duty)
        assert choices.status_code == 200
        assert choices.json() == [
            {"id": "li", "kind": "person", "name": {"zh": "李工", "en": "Engineer Li"}},
            {"id": "wu", "kind": "person", "name": {"zh": "吴师傅", "en": "Master Wu"}},
            {"id": "elevator-vendor", "kind": "team", "name": {"zh": "elevator-vendor", "en": "elevator-vendor"}},
            {"id": "plumbing", "kind": "team", "name": {"zh": "plumbing", "en": "plumbing"}},
            {"id": "lifts-co", "kind": "vendor", "name": {"zh": "电梯维保公司", "en": "Lift service"}},
        ]

        body = {"title": "水箱巡检", "kind": "inspection", "checklist": ["读液位", "检查紫外灯"]}
        made = await http.post("/tasks", json=body, headers=as_duty)
        assert made.status_code == 201
        path = f"/tasks/{made.json()['id']}"

        nobody = await http.post(f"{path}/assign", json={"assignee": "the plumber"}, headers=as_duty)
        assert nobody.status_code == 422
        (error,) = nobody.json()["detail"]
        assert error["loc"] == ["body", "assignee"]
        assert error["msg"].startswith("'the plumber' is none of the site's people, teams or vendors")
        assert (await http.get(path, headers=as_duty)).json()["status"] == "open"

        assert (await http.post(f"{path}/assign", json={"assignee": "li"}, headers=as_duty)).status_code == 200
        for status in ("in_progress", "resolved"):
            moved = await http.post(f"{path}/status", json={"status": status}, headers=as_duty)
            assert moved.status_code == 200
        await http.post(f"{path}/checklist/1", json={"done": True}, headers=as_duty)

        refused = await http.post(f"{path}/status", json={"status": "verified"}, headers=as_duty)
        assert refused.status_code == 409
        assert "1 checklist item(s) not done: 读液位" in refused.json()["detail"]
        assert "检查项未完成" in refused.json()["detail"]

        reason = {"status": "verified", "override": "液位计损坏，已报修"}
        not_a_manager = await http.post(f"{path}/status", json=reason, headers=as_duty)
        assert not_a_manager.status_code == 403
        assert (await http.get(path, headers=as_duty)).json()["status"] == "resolved"

        verified = await http.post(f"{path}/status", json=reason, headers=as_manager)
        assert verified.status_code == 200 and verified.json()["status"] == "verified"
        history = (await http.get(path, headers=as_duty)).json()["history"]
        assert (history[-2]["action"], history[-2]["actor"], history[-2]["detail"]) == (
            "checklist overridden",
            "manager-zhou",
            "液位计损坏，已报修 (open: 读液位)",
        )


JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 500  # the start of a phone's photo


async def test_a_photo_on_a_task_is_listed_downloaded_by_who_may_see_it_and_audited(
    ops_store: OpsStore, tmp_path: Path
) -> None:
    site = estate_in(tmp_path)
    users = UserStore(ops_store)
    tokens = {
        name: await users.add(name, role, buildings)
        for name, role, buildings in (("ana", Role.DUTY, ()), ("bo", Role.DUTY, ("B2",)), ("boss", Role.MANAGER, ()))
    }
    new = NewTask(Text("水泵漏水", "pump leak"), TaskKind.REPAIR, "high", TS, TS, "ana", device_id="pump-1")
    tid = int((await TaskStore(ops_store).create(new)).id)
    ctx = without_plant(site, ops_store, tmp_path / "journal")
    # The folder the runtime gives the task service (beside the journal, in the data folder).
    ctx.rules.tasks = TaskService(site, ctx.rules.task_store, ctx.bus, tmp_path / "attachments")
    app = create_app(ctx, TokenAuth({}, users))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://desk") as http:

        def who(name: str, content_type: str | None = None) -> dict[str, str]:
            headers = {"Authorization": f"Bearer {tokens[name]}"}
            return headers | ({"Content-Type": content_type} if content_type else {})

        path = f"/api/v1/tasks/{tid}/attachments"
        added = await http.post(f"{path}?name=leak.jpg", content=JPEG, headers=who("ana", "image/jpeg"))
        assert added.status_code == 201, added.text
        photo = added.json()
        assert (photo["name"], photo["content_type"], photo["size"], photo["added_by"]) == (
            "leak.jpg",
            "image/jpeg",
            len(JPEG),
            "ana",
        )
        assert photo["url"] == f"{path}/{photo['id']}"

        listed = await http.get(path, headers=who("ana"))
        assert [a["id"] for a in listed.json()] == [photo["id"]]
        got = await http.get(photo["url"], headers=who("ana"))
        assert got.status_code == 200 and got.content == JPEG
        assert got.headers["content-type"] == "image/jpeg"

        # bo works in B2: pump-1's task, and so its photo, are not his to see or add to.
        assert (await http.get(photo["url"], headers=who("bo"))).status_code == 404
        assert (await http.get(path, headers=who("bo"))).status_code == 404
        other = await http.post(f"{path}?name=x.jpg", content=JPEG, headers=who("bo", "image/jpeg"))
        assert other.status_code == 404

        text = await http.post(f"{path}?name=a.txt", content=b"hello", headers=who("ana", "text/plain"))
        assert text.status_code == 415 and "text/plain" in text.json()["detail"]
        fake = await http.post(f"{path}?name=x.jpg", content=b"<html>", headers=who("ana", "image/jpeg"))
        assert fake.status_code == 415 and "are not image/jpeg" in fake.json()["detail"]
        assert len((await http.get(path, headers=who("ana"))).json()) == 1

        audit = await http.get("/api/v1/audit", headers=who("boss"))
        entries = [(e["actor"], e["action"], e["outcome"]) for e in audit.json()]
        assert ("ana", "POST /tasks/{task_id}/attachments", "ok") in entries
        assert ("bo", "POST /tasks/{task_id}/attachments", "refused") in entries
        history = (await http.get(f"/api/v1/tasks/{tid}", headers=who("ana"))).json()["history"]
        assert history[-1]["action"] == "attached" and history[-1]["detail"].startswith("leak.jpg (image/jpeg")


PNG = b"\x89PNG\r\n\x1a\n"


async def test_the_running_service_keeps_a_phone_photo_larger_than_a_body_and_refuses_one_past_the_limit(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """Through the HTTP edge and the runtime's own folder: a 3 MB photo (past the 1 MiB of other
    bodies) is kept in the data folder and read back; one past `api.max_attachment_kb` is a 413."""
    site = write_site(tmp_path, mosquitto.url, free_port(), api={"max_attachment_kb": 4096})
    data = tmp_path / "data"
    duty = await asyncio.to_thread(add_user, site, data, "duty-li", "duty")
    as_duty = {"Authorization": f"Bearer {duty}"}
    async with running_system(site, data) as (url, _site), httpx.AsyncClient(base_url=f"{url}/api/v1") as http:
        made = await http.post("/tasks", json={"title": "漏水", "kind": "repair"}, headers=as_duty)
        path = f"/tasks/{made.json()['id']}/attachments"
        photo = PNG + bytes(3_000_000)
        png = {**as_duty, "Content-Type": "image/png"}
        kept = await http.post(path, params={"name": "leak.png"}, content=photo, headers=png)
        assert kept.status_code == 201, kept.text
        again = await http.get(f"{path}/{kept.json()['id']}", headers=as_duty)
        assert again.status_code == 200 and again.content == photo
        assert [f.read_bytes() == photo for f in (data / "attachments").iterdir()] == [True]
        too_big = await http.post(path, params={"name": "big.png"}, content=PNG + bytes(4_200_000), headers=png)
        assert too_big.status_code == 413
        assert len((await http.get(path, headers=as_duty)).json()) == 1
