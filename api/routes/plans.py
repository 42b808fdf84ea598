"""Emergency plans: the instances alarms opened, and ticking their steps as they are done."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import Field

from api import schemas
from api.auth import Role, TokenAuth, User
from api.body import Body, RecordId
from api.context import ApiContext, source_of
from facility.store.plans import PlanRefused


class StepDone(Body):
    note: str = Field(default="", max_length=2000, description="what was found or done")


def router(ctx: ApiContext, auth: TokenAuth) -> APIRouter:
    r = APIRouter(tags=["plans"])
    plans = ctx.rules.plans

    async def visible_plan(instance_id: int, user: User) -> dict[str, Any]:
        found = await plans.get(instance_id)
        if found is None or not ctx.may_see(user, found["device"]):
            raise HTTPException(404, f"no plan instance {instance_id}")
        return found

    async def work(instance_id: int, user: User, action: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        await visible_plan(instance_id, user)
        try:
            return ctx.placed(await action())
        except KeyError:
            raise HTTPException(404, f"no plan instance {instance_id}") from None
        except PlanRefused as exc:
            raise HTTPException(409, str(exc)) from None

    @r.get("/plans", response_model=list[schemas.PlanInstance])
    async def list_plans(user: User = Depends(auth.require(Role.VIEWER)), open: bool = True) -> list[dict[str, Any]]:
        """Open plan instances, oldest first; with `open=false`, the latest 200 of any state."""
        found = await plans.recent(open_only=open)
        return [ctx.placed(p) for p in found if ctx.may_see(user, p["device"])]

    @r.get("/plans/{instance_id}", response_model=schemas.PlanInstance)
    async def plan(instance_id: RecordId, user: User = Depends(auth.require(Role.VIEWER))) -> dict[str, Any]:
        return ctx.placed(await visible_plan(instance_id, user))

    @r.post("/plans/{instance_id}/steps/{step_id}", response_model=schemas.PlanInstance)
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

    @r.post("/plans/{instance_id}/close", response_model=schemas.PlanInstance)
    async def close(
        instance_id: RecordId, request: Request, user: User = Depends(auth.require(Role.DUTY))
    ) -> dict[str, Any]:
        """Close a plan with steps left undone: the emergency is over, or was a false alarm."""
        return await work(instance_id, user, lambda: plans.close(instance_id, user.name, source_of(request)))

    return r
