"""Plan queries of the reports: the steps done in a period, the plans opened, the plans still open."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from facility.store.reads.view import View
from facility.store.tables import PlanInstanceRow, PlanStepRow
from facility.vocabulary import Text


@dataclass(frozen=True)
class StepDone:
    """A plan step done, with the plan it is of."""

    ts: int
    plan: int
    title: Text
    device: str | None
    step: Text
    by: str | None
    late: bool
    note: str | None


@dataclass(frozen=True)
class OpenPlan:
    """A plan still open, and how far along it is at the time asked."""

    plan: int
    title: Text
    device: str | None
    opened_at: int
    done: int
    steps: int
    overdue: int


async def steps_done(view: View, since: int, now: int) -> list[StepDone]:
    """The plan steps done in [since, now], in order."""
    query = (
        select(
            PlanStepRow,
            PlanInstanceRow.id,
            PlanInstanceRow.title_zh,
            PlanInstanceRow.title_en,
            PlanInstanceRow.device_id,
        )
        .join(PlanInstanceRow, PlanInstanceRow.id == PlanStepRow.instance_id)
        .where(PlanStepRow.done_at >= since, PlanStepRow.done_at <= now, view.on_devices(PlanInstanceRow.device_id))
        .order_by(PlanStepRow.done_at, PlanStepRow.id)
    )
    return [
        StepDone(
            step.done_at,
            plan_id,
            Text(zh, en),
            device,
            Text(step.text_zh, step.text_en),
            step.done_by,
            step.done_at > step.due_at,
            step.note,
        )
        for step, plan_id, zh, en, device in (await view.session.execute(query)).all()
        if step.done_at is not None  # the query asks for steps done: for mypy
    ]


async def opened(view: View, since: int, now: int) -> int:
    """How many plans were opened in [since, now]."""
    query = (
        select(func.count())
        .select_from(PlanInstanceRow)
        .where(
            PlanInstanceRow.opened_at >= since,
            PlanInstanceRow.opened_at <= now,
            view.on_devices(PlanInstanceRow.device_id),
        )
    )
    return int((await view.session.execute(query)).scalar_one())


async def still_open(view: View, now: int) -> list[OpenPlan]:
    """The plans open now, the first opened first; steps overdue judged at `now`."""
    query = (
        select(PlanInstanceRow)
        .where(PlanInstanceRow.is_open, view.on_devices(PlanInstanceRow.device_id))
        .order_by(PlanInstanceRow.opened_at, PlanInstanceRow.id)
        .options(selectinload(PlanInstanceRow.steps))
    )
    return [
        OpenPlan(
            p.id,
            Text(p.title_zh, p.title_en),
            p.device_id,
            p.opened_at,
            sum(1 for st in p.steps if st.done_at is not None),
            len(p.steps),
            sum(1 for st in p.steps if st.done_at is None and now >= st.due_at),
        )
        for p in (await view.session.scalars(query)).all()
    ]
