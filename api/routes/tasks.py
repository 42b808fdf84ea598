"""Tasks (work orders): the board (and its file for a spreadsheet), one task with its history, a
task made by hand (a resident's complaint), and working it: assign, move through its statuses,
tick its checklist, add notes, add photos and files."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import FileResponse
from pydantic import Field

from api import schemas
from api.attachments import DOWNLOAD, UPLOAD, AttachmentInfo, FileName, kept_file
from api.auth import Role, User
from api.body import MAX_ID, Body, RecordId
from api.context import ApiContext, source_of
from api.deps import Ctx, Duty, Viewer
from api.download import LIST_FILE, ListFormatQuery, ListLangQuery, list_file
from facility import vocabulary
from facility.errors import Invalid, NotFound, Refused
from facility.model import Priority, now_ns
from facility.records import TaskKind, TaskRecord, TaskStatus
from facility.store.files import file_fields
from facility.store.tasks import Attachment
from reports.lists import TaskFilter, task_list


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


async def visible_task(ctx: ApiContext, task_id: int, user: User) -> TaskRecord:
    """The task, or NotFound (404) when it is unknown or of another building than the user's."""
    found = await ctx.rules.tasks.get(task_id)
    if not ctx.may_see(user, found.device):
        raise NotFound(f"no task {task_id}")
    return found


async def work(
    ctx: ApiContext, task_id: int, user: User, action: Callable[[], Awaitable[TaskRecord]]
) -> dict[str, Any]:
    """Carry out a change on a task the user may see; a change its state refuses is a Conflict
    (409), an assignee nobody answers to Invalid (422), both answered by api.errors."""
    await visible_task(ctx, task_id, user)
    return ctx.placed(await action())


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


def listed(found: Attachment) -> AttachmentInfo:
    return AttachmentInfo(url=f"/api/v1/tasks/{found.task_id}/attachments/{found.id}", **file_fields(found))


Asked = Annotated[TaskQuery, Depends(task_query)]
router = APIRouter(tags=["tasks"])


@router.get("/tasks", response_model=schemas.TaskPage)
async def list_tasks(
    ctx: Ctx,
    user: Viewer,
    asked: Asked,
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


@router.get("/tasks/export", response_class=Response, responses=LIST_FILE)
async def export_tasks(
    ctx: Ctx, user: Viewer, asked: Asked, fmt: ListFormatQuery = "xlsx", lang: ListLangQuery = "zh"
) -> Response:
    """Every task the board's filters match, not one page, as an Excel workbook or a CSV file,
    laid out as the reports list tasks: due times in site time, kinds, priorities and statuses
    in words of `lang`. At most 10 000 rows (reports.lists.MAX_ROWS), the first in the board's
    order; a file cut there says how many matched. A route of its own rather than a `format`
    of the board: the board answers a page of JSON with its schema, this a file of every row."""
    devices = ctx.chosen(user, asked.buildings)
    report = await task_list(ctx.site, ctx.ops, devices, asked.filters, now_ns(), latest_first=asked.latest_first)
    return list_file(report, fmt, lang)


@router.post("/tasks", status_code=201, response_model=schemas.Task)
async def create(ctx: Ctx, body: NewTask, request: Request, user: Duty) -> dict[str, Any]:
    """A task made by hand: a resident's complaint, an engineer's finding."""
    if body.device is not None and not ctx.may_see(user, body.device):
        raise Invalid(f"no device {body.device!r} in this site", field="device")
    title = (
        vocabulary.Text.same(body.title)
        if isinstance(body.title, str)
        else vocabulary.Text(body.title.zh, body.title.en)
    )
    created = await ctx.rules.tasks.create(
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
    return ctx.placed(created)


@router.get("/tasks/assignees", response_model=list[AssigneeChoice])
async def assignees(ctx: Ctx, _: Viewer) -> list[dict[str, Any]]:
    """Who a task may be given to: the site's people, their teams and its vendors; an assignee
    outside this list is refused."""
    listed = ctx.rules.tasks.assignees()
    return [{"id": a.id, "kind": a.kind, "name": {"zh": a.name.zh, "en": a.name.en}} for a in listed]


@router.post("/tasks/{task_id}/attachments", **UPLOAD)
async def attach(ctx: Ctx, task_id: RecordId, request: Request, name: FileName, user: Duty) -> AttachmentInfo:
    """Put a photo or a PDF on a task: the body is the file itself, its Content-Type one of
    image/jpeg, image/png, image/webp, image/heic or application/pdf (415 otherwise, or when
    the bytes are not of that type), at most the site's `api.max_attachment_kb` (413)."""
    await visible_task(ctx, task_id, user)
    kind, source = request.headers.get("content-type", ""), source_of(request)
    return listed(await ctx.rules.tasks.attach(task_id, name, kind, await request.body(), user.name, source))


@router.get("/tasks/{task_id}/attachments", response_model=list[AttachmentInfo])
async def attachments(ctx: Ctx, task_id: RecordId, user: Viewer) -> list[AttachmentInfo]:
    """The photos and files on a task, oldest first."""
    await visible_task(ctx, task_id, user)
    return [listed(found) for found in await ctx.rules.tasks.attachments(task_id)]


@router.get("/tasks/{task_id}/attachments/{attachment_id}", **DOWNLOAD)
async def download(ctx: Ctx, task_id: RecordId, attachment_id: RecordId, user: Viewer) -> FileResponse:
    """One photo or file, for anyone who may see its task."""
    await visible_task(ctx, task_id, user)
    tasks = ctx.rules.tasks
    found = next((a for a in await tasks.attachments(task_id) if a.id == attachment_id), None)
    if found is None:
        raise NotFound(f"task {task_id} has no attachment {attachment_id}")
    return kept_file(tasks.attachment_path(found), found.content_type, found.name, f"task {task_id}")


@router.get("/tasks/{task_id}", response_model=schemas.TaskDetail)
async def task(ctx: Ctx, task_id: RecordId, user: Viewer) -> dict[str, Any]:
    """The task with its history: who did what, when and from where."""
    return ctx.placed(await visible_task(ctx, task_id, user))


@router.post("/tasks/{task_id}/assign", response_model=schemas.Task)
async def assign(ctx: Ctx, task_id: RecordId, body: Assign, request: Request, user: Duty) -> dict[str, Any]:
    """Give the task to one of the assignees (`/tasks/assignees`); anyone else is a 422 naming
    `assignee`."""
    tasks, source = ctx.rules.tasks, source_of(request)
    return await work(ctx, task_id, user, lambda: tasks.assign(task_id, body.assignee, user.name, source))


@router.post("/tasks/{task_id}/status", response_model=schemas.Task)
async def move(ctx: Ctx, task_id: RecordId, body: StatusMove, request: Request, user: Duty) -> dict[str, Any]:
    """Move a task on: open → assigned → in_progress → resolved → verified, or cancelled. Verified
    needs the condition behind a rule's task to have cleared, and every checklist item done
    unless a manager gives an `override` reason (409 names the items left open)."""
    if body.override is not None and user.role < Role.MANAGER:
        raise Refused("only a manager may verify a task over its open checklist")
    tasks, source = ctx.rules.tasks, source_of(request)
    return await work(
        ctx, task_id, user, lambda: tasks.set_status(task_id, body.status, user.name, source, override=body.override)
    )


@router.post("/tasks/{task_id}/checklist/{item}", response_model=schemas.Task)
async def tick(
    ctx: Ctx,
    task_id: RecordId,
    item: Annotated[int, Path(ge=0, le=MAX_ID)],
    body: Tick,
    request: Request,
    user: Duty,
) -> dict[str, Any]:
    """Mark checklist item `item` (its position, from 0) done, or not done again."""
    tasks, source = ctx.rules.tasks, source_of(request)
    return await work(ctx, task_id, user, lambda: tasks.tick(task_id, item, user.name, source, done=body.done))


@router.post("/tasks/{task_id}/notes", response_model=schemas.Task)
async def note(ctx: Ctx, task_id: RecordId, body: Note, request: Request, user: Duty) -> dict[str, Any]:
    tasks, source = ctx.rules.tasks, source_of(request)
    return await work(ctx, task_id, user, lambda: tasks.add_note(task_id, body.text, user.name, source))
