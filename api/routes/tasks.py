"""Tasks (work orders): the board, one task with its history, a task made by hand (a resident's
complaint), and working it: assign, move through its statuses, tick its checklist, add notes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import Field

from api import schemas
from api.auth import Role, TokenAuth, User
from api.body import MAX_ID, Body, RecordId, field_error
from api.context import ApiContext, source_of
from facility.model import Priority, now_ns
from facility.store.tasks import Bilingual, TaskError, TaskKind, TaskNotFound, TaskStatus


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


class Tick(Body):
    done: bool = True


class Note(Body):
    text: str = Field(min_length=1, max_length=4000)


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
        except TaskError as exc:
            raise HTTPException(409, str(exc)) from None

    @r.get("/tasks", response_model=schemas.TaskPage)
    async def list_tasks(
        user: User = Depends(auth.require(Role.VIEWER)),
        status: Annotated[list[TaskStatus], Query()] = [],  # noqa: B006 (FastAPI copies query defaults)
        kind: TaskKind | None = None,
        team: str | None = None,
        vendor: str | None = None,
        overdue: bool | None = None,
        building: Annotated[list[str], Query()] = [],  # noqa: B006
        sort: Annotated[Literal["due", "-changed_at"], Query(description="soonest due, or latest changed")] = "due",
        limit: Annotated[int, Query(ge=1, le=500)] = 200,
        offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    ) -> dict[str, Any]:
        """Tasks matching every filter given, the soonest due first. A building filter keeps the
        tasks of its devices and the site-wide ones."""
        devices = ctx.chosen(user, building)
        filters: dict[str, Any] = {
            "status": status,
            "kind": kind,
            "team": team,
            "vendor": vendor,
            "overdue": overdue,
            "devices": devices,
        }
        now = now_ns()
        latest = sort == "-changed_at"
        items = await ctx.rules.task_store.list(now, latest_first=latest, limit=limit, offset=offset, **filters)
        total = await ctx.rules.task_store.count(now, **filters)
        return {"items": [ctx.placed(t) for t in items], "total": total, "limit": limit, "offset": offset}

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
        needs the condition behind a rule's task to have cleared."""
        return await work(task_id, user, lambda: tasks.set_status(task_id, body.status, user.name, source_of(request)))

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
