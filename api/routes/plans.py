"""Emergency plans: the instances alarms opened, ticking their steps as they are done, and the
photos and files taken while working them (from a phone, as on a task)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import FileResponse
from pydantic import Field

from api import schemas
from api.auth import Role, TokenAuth, User
from api.body import Body, RecordId
from api.context import ApiContext, source_of
from api.routes.tasks import DOWNLOAD, UPLOAD, AttachmentInfo, FileName, kept_file, received
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


def router(ctx: ApiContext, auth: TokenAuth) -> APIRouter:
    r = APIRouter(tags=["plans"])
    plans = ctx.rules.plans

    async def visible_plan(instance_id: int, user: User) -> dict[str, Any]:
        found = await plans.get(instance_id)
        if found is None or not ctx.may_see(user, found["device"]):
            raise HTTPException(404, f"no plan instance {instance_id}")
        return found

    async def visible_step(instance_id: int, step_id: str, user: User) -> None:
        found = await visible_plan(instance_id, user)
        if all(step["id"] != step_id for step in found["steps"]):
            raise HTTPException(404, f"plan instance {instance_id} has no step {step_id!r}")

    def shown(instance: dict[str, Any]) -> dict[str, Any]:
        """The instance as the API answers it: placed, each file with its download link."""
        steps = [
            {
                **step,
                "attachments": [
                    {**a, "url": step_url(instance["id"], step["id"], a["id"])} for a in step["attachments"]
                ],
            }
            for step in instance["steps"]
        ]
        return ctx.placed({**instance, "steps": steps})

    def listed(found: StepAttachment) -> AttachmentInfo:
        return AttachmentInfo(url=step_url(found.instance_id, found.step_id, found.id), **file_fields(found))

    async def work(instance_id: int, user: User, action: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        await visible_plan(instance_id, user)
        try:
            return shown(await action())
        except KeyError:
            raise HTTPException(404, f"no plan instance {instance_id}") from None
        except PlanRefused as exc:
            raise HTTPException(409, str(exc)) from None

    @r.get("/plans", response_model=list[PlanInstanceWithFiles])
    async def list_plans(user: User = Depends(auth.require(Role.VIEWER)), open: bool = True) -> list[dict[str, Any]]:
        """Open plan instances, oldest first; with `open=false`, the latest 200 of any state."""
        found = await plans.recent(open_only=open)
        return [shown(p) for p in found if ctx.may_see(user, p["device"])]

    @r.get("/plans/{instance_id}", response_model=PlanInstanceWithFiles)
    async def plan(instance_id: RecordId, user: User = Depends(auth.require(Role.VIEWER))) -> dict[str, Any]:
        return shown(await visible_plan(instance_id, user))

    @r.post("/plans/{instance_id}/steps/{step_id}/attachments", **UPLOAD)
    async def attach(
        instance_id: RecordId,
        step_id: StepId,
        request: Request,
        name: FileName,
        user: User = Depends(auth.require(Role.DUTY)),
    ) -> AttachmentInfo:
        """Put a photo or a PDF on a step, while it is worked or after: the body is the file
        itself, its Content-Type one of image/jpeg, image/png, image/webp, image/heic or
        application/pdf (415 otherwise, or when the bytes are not of that type), at most the
        site's `api.max_attachment_kb` (413, answered at the edge before the body is read)."""
        await visible_step(instance_id, step_id, user)
        try:
            added = await received(
                request, lambda data, kind: plans.attach(instance_id, step_id, name, kind, data, user.name)
            )
        except (KeyError, PlanRefused):  # gone since it was looked up
            raise HTTPException(404, f"no step {step_id!r} in plan instance {instance_id}") from None
        return listed(added)

    @r.get("/plans/{instance_id}/steps/{step_id}/attachments", response_model=list[AttachmentInfo])
    async def attachments(
        instance_id: RecordId, step_id: StepId, user: User = Depends(auth.require(Role.VIEWER))
    ) -> list[AttachmentInfo]:
        """The photos and files on a step, oldest first."""
        await visible_step(instance_id, step_id, user)
        return [listed(found) for found in await plans.attachments(instance_id, step_id)]

    @r.get("/plans/{instance_id}/steps/{step_id}/attachments/{attachment_id}", **DOWNLOAD)
    async def download(
        instance_id: RecordId,
        step_id: StepId,
        attachment_id: RecordId,
        user: User = Depends(auth.require(Role.VIEWER)),
    ) -> FileResponse:
        """One photo or file, for anyone who may see its plan."""
        await visible_step(instance_id, step_id, user)
        found = next((a for a in await plans.attachments(instance_id, step_id) if a.id == attachment_id), None)
        if found is None:
            raise HTTPException(
                404, f"step {step_id!r} of plan instance {instance_id} has no attachment {attachment_id}"
            )
        of = f"plan instance {instance_id} step {step_id}"
        return kept_file(plans.attachment_path(found), found.content_type, found.name, of)

    @r.post("/plans/{instance_id}/steps/{step_id}", response_model=PlanInstanceWithFiles)
    async def tick(
        instance_id: RecordId,
        step_id: str,
        body: StepDone,
        request: Request,
        user: User = Depends(auth.require(Role.DUTY)),
    ) -> dict[str, Any]:
        """Record that a step is done, by whom, when and from where; the plan closes with its last step."""
        return await work(
            instance_id, user, lambda: plans.tick(instance_id, step_id, user.name, source_of(request), body.note)
        )

    @r.post("/plans/{instance_id}/close", response_model=PlanInstanceWithFiles)
    async def close(
        instance_id: RecordId, request: Request, user: User = Depends(auth.require(Role.DUTY))
    ) -> dict[str, Any]:
        """Close a plan with steps left undone: the emergency is over, or was a false alarm."""
        return await work(instance_id, user, lambda: plans.close(instance_id, user.name, source_of(request)))

    return r
