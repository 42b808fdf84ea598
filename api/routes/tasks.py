"""Tasks (work orders): the board (and its file for a spreadsheet), one task with its history, a
task made by hand (a resident's complaint), and working it: assign, move through its statuses,
tick its checklist, add notes, add photos and files."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.responses import FileResponse
from pydantic import Field

from api import schemas
from api.auth import Role, TokenAuth, User
from api.body import MAX_ID, Body, RecordId, field_error
from api.context import ApiContext, source_of
from api.download import LIST_FILE, ListFormatQuery, ListLangQuery, list_file
from facility.model import Priority, now_ns
from facility.store.files import file_fields
from facility.store.tasks import Attachment, Bilingual, TaskError, TaskKind, TaskNotFound, TaskStatus
from reports.lists import TaskFilter, task_list
from rules.attachments import ATTACHMENT_TYPES, AttachmentRefused
from rules.tasks import UnknownAssignee


class Text(Body):
    zh: str = Field(default="", max_length=500)
    en: str = Field(default="", max_length=500)


class NewTask(Body):
    title: str | Text = Field(description="one text, or {zh, en}")
    kind: TaskKind = TaskKind.COMPLAINT
    priority: Priority = Priority.MEDIUM
    description: str = Field(default="", max_length=4000)
    team: str = Field(default="", max_length=100)
    vendor: str | None = Field(default=None, description="a vendor id of the site; default: the device's")
    device: str | None = None
    due: datetime | None = Field(default=None, description="the time promised; default: the priority's SLA")
    checklist: list[Annotated[str, Field(min_length=1, max_length=500)]] = Field(default=[], max_length=50)


class Assign(Body):
    assignee: str = Field(min_length=1, max_length=100)


class StatusMove(Body):
    status: TaskStatus
    override: str | None = Field(
        default=None,
        min_length=1,
        max_length=500,
        description="a manager's reason to verify a task with checklist items not done; kept in its history",
    )


class AttachmentInfo(schemas.Answer):
    """A photo or file on a task or a plan step, as its list shows it; `url` downloads it."""

    id: int
    name: str
    content_type: str
    size: int
    sha256: str
    added_by: str
    added_at: int
    url: str


class AssigneeChoice(schemas.Answer):
    """One name the assignee picker offers."""

    id: str
    kind: Literal["person", "team", "vendor"]
    name: schemas.Text


@dataclass(frozen=True)
class TaskQuery:
    """What the board and its export are asked for: the filters, the buildings and the order."""

    filters: TaskFilter
    buildings: tuple[str, ...]
    latest_first: bool


class Tick(Body):
    done: bool = True


class Note(Body):
    text: str = Field(min_length=1, max_length=4000)


log = logging.getLogger(__name__)
R = TypeVar("R")
# The bodies the upload takes, and the download gives: the types an attachment may be (rules.attachments).
UPLOAD_CONTENT = {kind: {"schema": {"type": "string", "format": "binary"}} for kind in ATTACHMENT_TYPES}
# How an upload route and a download route of an attachment are documented, for tasks and plan steps.
UPLOAD: dict[str, Any] = {
    "status_code": 201,
    "response_model": AttachmentInfo,
    "responses": {413: {"description": "larger than api.max_attachment_kb"}, 415: {"description": "not a type taken"}},
    "openapi_extra": {"requestBody": {"required": True, "content": UPLOAD_CONTENT}},
}
DOWNLOAD: dict[str, Any] = {
    "response_class": FileResponse,
    "responses": {200: {"content": UPLOAD_CONTENT, "description": "the file as it was sent"}},
}
FileName = Annotated[str, Query(min_length=1, max_length=200, description="the file's name, as the phone gave it")]


async def received(request: Request, keep: Callable[[bytes, str], Awaitable[R]]) -> R:
    """The upload that is `request`'s body, kept by `keep(bytes, declared content type)`; a file
    refused (rules.attachments) is answered with the status its refusal names."""
    try:
        return await keep(await request.body(), request.headers.get("content-type", ""))
    except AttachmentRefused as exc:
        raise HTTPException(exc.status, str(exc)) from None


def kept_file(kept: FilePath, content_type: str, name: str, of: str) -> FileResponse:
    """The bytes of an attachment of `of` (a task, a plan step) as they were sent; a record whose
    file is gone from the data folder is logged, for the operator to restore it from a backup."""
    if not kept.is_file():
        log.error("%s: the file %s of attachment %r is missing", of, kept, name)
        raise HTTPException(404, f"the file of attachment {name!r} is missing from the data folder")
    return FileResponse(kept, media_type=content_type, filename=name)


def router(ctx: ApiContext, auth: TokenAuth) -> APIRouter:
    r = APIRouter(tags=["tasks"])
    tasks = ctx.rules.tasks

    async def visible_task(task_id: int, user: User) -> dict[str, Any]:
        found = await tasks.get(task_id)
        if found is None or not ctx.may_see(user, found["device"]):
            raise HTTPException(404, f"no task {task_id}")
        return found

    async def work(task_id: int, user: User, action: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        """Carry out a change on a task the user may see; a change its state refuses is 409."""
        await visible_task(task_id, user)
        try:
            return ctx.placed(await action())
        except TaskNotFound:
            raise HTTPException(404, f"no task {task_id}") from None
        except UnknownAssignee as exc:  # "assignee: message"
            raise field_error("body", "assignee", str(exc).partition(": ")[2]) from None
        except TaskError as exc:
            raise HTTPException(409, str(exc)) from None

    def task_query(
        status: Annotated[list[TaskStatus], Query()] = [],  # noqa: B006 (FastAPI copies query defaults)
        kind: TaskKind | None = None,
        team: str | None = None,
        vendor: str | None = None,
        overdue: bool | None = None,
        building: Annotated[list[str], Query()] = [],  # noqa: B006
        sort: Annotated[Literal["due", "-changed_at"], Query(description="soonest due, or latest changed")] = "due",
    ) -> TaskQuery:
        """The board's query parameters, one dependency for the board and its export: they filter alike."""
        filters = TaskFilter(status=tuple(status), kind=kind, team=team, vendor=vendor, overdue=overdue)
        return TaskQuery(filters, tuple(building), latest_first=sort == "-changed_at")

    @r.get("/tasks", response_model=schemas.TaskPage)
    async def list_tasks(
        user: User = Depends(auth.require(Role.VIEWER)),
        asked: TaskQuery = Depends(task_query),
        limit: Annotated[int, Query(ge=1, le=500)] = 200,
        offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    ) -> dict[str, Any]:
        """Tasks matching every filter given, the soonest due first. A building filter keeps the
        tasks of its devices and the site-wide ones."""
        filters = {**asked.filters.store_filters(), "devices": ctx.chosen(user, asked.buildings)}
        now = now_ns()
        store = ctx.rules.task_store
        items = await store.list(now, latest_first=asked.latest_first, limit=limit, offset=offset, **filters)
        total = await store.count(now, **filters)
        return {"items": [ctx.placed(t) for t in items], "total": total, "limit": limit, "offset": offset}

    @r.get("/tasks/export", response_class=Response, responses=LIST_FILE)
    async def export_tasks(
        user: User = Depends(auth.require(Role.VIEWER)),
        asked: TaskQuery = Depends(task_query),
        fmt: ListFormatQuery = "xlsx",
        lang: ListLangQuery = "zh",
    ) -> Response:
        """Every task the board's filters match, not one page, as an Excel workbook or a CSV file,
        laid out as the reports list tasks: due times in site time, kinds, priorities and statuses
        in words of `lang`. At most 10 000 rows (reports.lists.MAX_ROWS), the first in the board's
        order; a file cut there says how many matched. A route of its own rather than a `format`
        of the board: the board answers a page of JSON with its schema, this a file of every row."""
        devices = ctx.chosen(user, asked.buildings)
        report = await task_list(ctx.site, ctx.ops, devices, asked.filters, now_ns(), latest_first=asked.latest_first)
        return list_file(report, fmt, lang)

    @r.post("/tasks", status_code=201, response_model=schemas.Task)
    async def create(body: NewTask, request: Request, user: User = Depends(auth.require(Role.DUTY))) -> dict[str, Any]:
        """A task made by hand: a resident's complaint, an engineer's finding."""
        if body.device is not None and not ctx.may_see(user, body.device):
            raise field_error("body", "device", f"no device {body.device!r} in this site")
        title = Bilingual.same(body.title) if isinstance(body.title, str) else Bilingual(body.title.zh, body.title.en)
        try:
            created = await tasks.create(
                title=title,
                kind=body.kind,
                by=user.name,
                source=source_of(request),
                priority=body.priority,
                description=body.description,
                team=body.team,
                vendor=body.vendor,
                device=body.device,
                due=None if body.due is None else ctx.ns_of(body.due, "due", "body"),
                checklist=body.checklist,
            )
        except TaskError as exc:  # "field: message"
            field, _, message = str(exc).partition(": ")
            raise field_error("body", field, message) from None
        return ctx.placed(created)

    @r.get("/tasks/assignees", response_model=list[AssigneeChoice])
    async def assignees(user: User = Depends(auth.require(Role.VIEWER))) -> list[dict[str, Any]]:
        """Who a task may be given to: the site's people, their teams and its vendors; an assignee
        outside this list is refused."""
        return [{"id": a.id, "kind": a.kind, "name": {"zh": a.name.zh, "en": a.name.en}} for a in tasks.assignees()]

    def listed(found: Attachment) -> AttachmentInfo:
        return AttachmentInfo(url=f"/api/v1/tasks/{found.task_id}/attachments/{found.id}", **file_fields(found))

    @r.post("/tasks/{task_id}/attachments", **UPLOAD)
    async def attach(
        task_id: RecordId,
        request: Request,
        name: FileName,
        user: User = Depends(auth.require(Role.DUTY)),
    ) -> AttachmentInfo:
        """Put a photo or a PDF on a task: the body is the file itself, its Content-Type one of
        image/jpeg, image/png, image/webp, image/heic or application/pdf (415 otherwise, or when
        the bytes are not of that type), at most the site's `api.max_attachment_kb` (413)."""
        await visible_task(task_id, user)
        source = source_of(request)
        try:
            added = await received(
                request, lambda data, kind: tasks.attach(task_id, name, kind, data, user.name, source)
            )
        except TaskNotFound:
            raise HTTPException(404, f"no task {task_id}") from None
        return listed(added)

    @r.get("/tasks/{task_id}/attachments", response_model=list[AttachmentInfo])
    async def attachments(task_id: RecordId, user: User = Depends(auth.require(Role.VIEWER))) -> list[AttachmentInfo]:
        """The photos and files on a task, oldest first."""
        await visible_task(task_id, user)
        return [listed(found) for found in await tasks.attachments(task_id)]

    @r.get("/tasks/{task_id}/attachments/{attachment_id}", **DOWNLOAD)
    async def download(
        task_id: RecordId, attachment_id: RecordId, user: User = Depends(auth.require(Role.VIEWER))
    ) -> FileResponse:
        """One photo or file, for anyone who may see its task."""
        await visible_task(task_id, user)
        found = next((a for a in await tasks.attachments(task_id) if a.id == attachment_id), None)
        if found is None:
            raise HTTPException(404, f"task {task_id} has no attachment {attachment_id}")
        return kept_file(tasks.attachment_path(found), found.content_type, found.name, f"task {task_id}")

    @r.get("/tasks/{task_id}", response_model=schemas.TaskDetail)
    async def task(task_id: RecordId, user: User = Depends(auth.require(Role.VIEWER))) -> dict[str, Any]:
        """The task with its history: who did what, when and from where."""
        return ctx.placed(await visible_task(task_id, user))

    @r.post("/tasks/{task_id}/assign", response_model=schemas.Task)
    async def assign(
        task_id: RecordId, body: Assign, request: Request, user: User = Depends(auth.require(Role.DUTY))
    ) -> dict[str, Any]:
        return await work(task_id, user, lambda: tasks.assign(task_id, body.assignee, user.name, source_of(request)))

    @r.post("/tasks/{task_id}/status", response_model=schemas.Task)
    async def move(
        task_id: RecordId, body: StatusMove, request: Request, user: User = Depends(auth.require(Role.DUTY))
    ) -> dict[str, Any]:
        """Move a task on: open → assigned → in_progress → resolved → verified, or cancelled. Verified
        needs the condition behind a rule's task to have cleared, and every checklist item done
        unless a manager gives an `override` reason (409 names the items left open)."""
        if body.override is not None and user.role < Role.MANAGER:
            raise HTTPException(403, "only a manager may verify a task over its open checklist")
        return await work(
            task_id,
            user,
            lambda: tasks.set_status(task_id, body.status, user.name, source_of(request), override=body.override),
        )

    @r.post("/tasks/{task_id}/checklist/{item}", response_model=schemas.Task)
    async def tick(
        task_id: RecordId,
        item: Annotated[int, Path(ge=0, le=MAX_ID)],
        body: Tick,
        request: Request,
        user: User = Depends(auth.require(Role.DUTY)),
    ) -> dict[str, Any]:
        """Mark checklist item `item` (its position, from 0) done, or not done again."""
        return await work(
            task_id, user, lambda: tasks.tick(task_id, item, user.name, source_of(request), done=body.done)
        )

    @r.post("/tasks/{task_id}/notes", response_model=schemas.Task)
    async def note(
        task_id: RecordId, body: Note, request: Request, user: User = Depends(auth.require(Role.DUTY))
    ) -> dict[str, Any]:
        return await work(task_id, user, lambda: tasks.add_note(task_id, body.text, user.name, source_of(request)))

    return r
