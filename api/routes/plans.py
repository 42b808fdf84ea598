"""Emergency plans: the instances alarms opened, ticking their steps as they are done, and the
photos and files taken while working them (from a phone, as on a task)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import FileResponse
from pydantic import Field

from api import schemas
from api.attachments import DOWNLOAD, UPLOAD, AttachmentInfo, FileName, kept_file
from api.auth import User
from api.body import Body, RecordId
from api.context import ApiContext, source_of
from api.deps import Ctx, Duty, Viewer
from facility.errors import NotFound
from facility.records import PlanRecord
from facility.store.files import file_fields
from facility.store.plans import PlanRefused, StepAttachment

StepId = Annotated[str, Path(min_length=1, max_length=200, description="the step's id in its plan")]


class StepDone(Body):
    note: str = Field(default="", max_length=2000, description="what was found or done")


class PlanStepWithFiles(schemas.PlanStep):
    attachments: list[AttachmentInfo] = Field(description="the photos and files on the step, oldest first")


class PlanInstanceWithFiles(schemas.PlanInstance):
    """A plan instance whose steps list the files on them."""

    steps: list[PlanStepWithFiles]  # type: ignore[assignment]


def step_url(instance_id: int, step_id: str, attachment_id: int) -> str:
    """Where a step's file downloads from."""
    return f"/api/v1/plans/{instance_id}/steps/{step_id}/attachments/{attachment_id}"


async def visible_plan(ctx: ApiContext, instance_id: int, user: User) -> PlanRecord:
    """The plan instance, or NotFound (404) when it is unknown or of another building than the user's."""
    found = await ctx.rules.plans.get(instance_id)
    if not ctx.may_see(user, found.device):
        raise NotFound(f"no plan instance {instance_id}")
    return found


async def visible_step(ctx: ApiContext, instance_id: int, step_id: str, user: User) -> None:
    found = await visible_plan(ctx, instance_id, user)
    if found.step(step_id) is None:
        raise NotFound(f"plan instance {instance_id} has no step {step_id!r}")


def shown(ctx: ApiContext, instance: PlanRecord) -> dict[str, Any]:
    """The instance as the API answers it: placed, each file with its download link."""
    steps = [
        {
            **step.as_json(),
            "attachments": [{**file_fields(a), "url": step_url(instance.id, step.id, a.id)} for a in step.attachments],
        }
        for step in instance.steps
    ]
    return ctx.placed({**instance.as_json(), "steps": steps})


def listed(found: StepAttachment) -> AttachmentInfo:
    return AttachmentInfo(url=step_url(found.instance_id, found.step_id, found.id), **file_fields(found))


async def work(
    ctx: ApiContext, instance_id: int, user: User, action: Callable[[], Awaitable[PlanRecord]]
) -> dict[str, Any]:
    """Carry out a change on a plan the user may see; one its state refuses is 409 (Conflict), one
    gone since it was looked up 404 (NotFound): the error handlers answer both."""
    await visible_plan(ctx, instance_id, user)
    return shown(ctx, await action())


router = APIRouter(tags=["plans"])


@router.get("/plans", response_model=list[PlanInstanceWithFiles])
async def list_plans(ctx: Ctx, user: Viewer, open: bool = True) -> list[dict[str, Any]]:
    """Open plan instances, oldest first; with `open=false`, the latest 200 of any state."""
    found = await ctx.rules.plans.recent(open_only=open)
    return [shown(ctx, p) for p in found if ctx.may_see(user, p.device)]


@router.get("/plans/{instance_id}", response_model=PlanInstanceWithFiles)
async def plan(ctx: Ctx, instance_id: RecordId, user: Viewer) -> dict[str, Any]:
    return shown(ctx, await visible_plan(ctx, instance_id, user))


@router.post("/plans/{instance_id}/steps/{step_id}/attachments", **UPLOAD)
async def attach(
    ctx: Ctx, instance_id: RecordId, step_id: StepId, request: Request, name: FileName, user: Duty
) -> AttachmentInfo:
    """Put a photo or a PDF on a step, while it is worked or after: the body is the file
    itself, its Content-Type one of image/jpeg, image/png, image/webp, image/heic or
    application/pdf (415 otherwise, or when the bytes are not of that type), at most the
    site's `api.max_attachment_kb` (413, answered at the edge before the body is read)."""
    await visible_step(ctx, instance_id, step_id, user)
    kind = request.headers.get("content-type", "")
    try:
        added = await ctx.rules.plans.attach(instance_id, step_id, name, kind, await request.body(), user.name)
    except (NotFound, PlanRefused):  # the instance or its step is gone since it was looked up
        raise NotFound(f"no step {step_id!r} in plan instance {instance_id}") from None
    return listed(added)


@router.get("/plans/{instance_id}/steps/{step_id}/attachments", response_model=list[AttachmentInfo])
async def attachments(ctx: Ctx, instance_id: RecordId, step_id: StepId, user: Viewer) -> list[AttachmentInfo]:
    """The photos and files on a step, oldest first."""
    await visible_step(ctx, instance_id, step_id, user)
    return [listed(found) for found in await ctx.rules.plans.attachments(instance_id, step_id)]


@router.get("/plans/{instance_id}/steps/{step_id}/attachments/{attachment_id}", **DOWNLOAD)
async def download(
    ctx: Ctx, instance_id: RecordId, step_id: StepId, attachment_id: RecordId, user: Viewer
) -> FileResponse:
    """One photo or file, for anyone who may see its plan."""
    await visible_step(ctx, instance_id, step_id, user)
    plans = ctx.rules.plans
    found = next((a for a in await plans.attachments(instance_id, step_id) if a.id == attachment_id), None)
    if found is None:
        raise NotFound(f"step {step_id!r} of plan instance {instance_id} has no attachment {attachment_id}")
    of = f"plan instance {instance_id} step {step_id}"
    return kept_file(plans.attachment_path(found), found.content_type, found.name, of)


@router.post("/plans/{instance_id}/steps/{step_id}", response_model=PlanInstanceWithFiles)
async def tick(
    ctx: Ctx, instance_id: RecordId, step_id: str, body: StepDone, request: Request, user: Duty
) -> dict[str, Any]:
    """Record that a step is done, by whom, when and from where; the plan closes with its last step."""
    plans, source = ctx.rules.plans, source_of(request)
    return await work(ctx, instance_id, user, lambda: plans.tick(instance_id, step_id, user.name, source, body.note))


@router.post("/plans/{instance_id}/close", response_model=PlanInstanceWithFiles)
async def close(ctx: Ctx, instance_id: RecordId, request: Request, user: Duty) -> dict[str, Any]:
    """Close a plan with steps left undone: the emergency is over, or was a false alarm."""
    plans, source = ctx.rules.plans, source_of(request)
    return await work(ctx, instance_id, user, lambda: plans.close(instance_id, user.name, source))
