"""Emergency plan instances in the ops store: one per alarm, its steps with time limits, and who
ticked each step when and from where.

An instance copies the plan's texts and limits when it opens, so that editing the plan library
later never rewrites what duty staff were asked to do. At most one instance exists per alarm (a
unique index makes the database enforce it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from facility.errors import Conflict, NotFound
from facility.records import FileRecord, NewFile, PlanRecord, PlanStepRecord
from facility.store.files import file_fields
from facility.store.ops import OpsStore
from facility.store.tables import PlanInstanceRow, PlanStepRow, StepAttachmentRow
from facility.vocabulary import Text


@dataclass(frozen=True)
class StepAttachment(FileRecord):
    """An attachment of a step of a plan instance."""

    instance_id: int
    step_id: str


@dataclass(frozen=True)
class NewStep:
    step_id: str
    text_zh: str
    text_en: str
    within_ns: int


class PlanRefused(Conflict):
    """An action on a plan instance that cannot be carried out; the message says why."""


def plan_record(row: PlanInstanceRow, now: int) -> PlanRecord:
    """The instance as the desk and notifiers see it; `overdue` is judged at `now`."""
    return PlanRecord(
        id=row.id,
        plan=row.plan_id,
        alarm=row.alarm_id,
        device=row.device_id,
        title=Text(row.title_zh, row.title_en),
        state="open" if row.is_open else "closed",
        opened_at=row.opened_at,
        closed_at=row.closed_at,
        closed_by=row.closed_by,
        closed_from=row.closed_from,
        steps=tuple(
            PlanStepRecord(
                id=s.step_id,
                text=Text(s.text_zh, s.text_en),
                due_at=s.due_at,
                done_at=s.done_at,
                done_by=s.done_by,
                done_from=s.done_from,
                note=s.note,
                overdue=s.done_at is None and row.is_open and now >= s.due_at,
                late=s.done_at is not None and s.done_at > s.due_at,
                attachments=tuple(FileRecord(**file_fields(a)) for a in row.attachments if a.step_id == s.step_id),
            )
            for s in row.steps
        ),
    )


def _attachment(row: StepAttachmentRow) -> StepAttachment:
    return StepAttachment(instance_id=row.instance_id, step_id=row.step_id, **file_fields(row))


class PlanStore:
    def __init__(self, ops: OpsStore) -> None:
        self._sessions = ops.sessions

    async def open(
        self, plan_id: str, title: tuple[str, str], alarm_id: int, device_id: str, ts: int, steps: list[NewStep]
    ) -> tuple[PlanRecord, bool]:
        """Open an instance for an alarm; returns it and whether it is new. An alarm that already has
        one (open or closed) gets that one back: a recurrence does not restart the checklist."""
        try:
            async with self._sessions.begin() as s:
                found = await self._by_alarm(s, alarm_id)
                if found is not None:
                    return plan_record(found, ts), False
                row = PlanInstanceRow(
                    plan_id=plan_id,
                    alarm_id=alarm_id,
                    device_id=device_id,
                    title_zh=title[0],
                    title_en=title[1],
                    is_open=True,
                    opened_at=ts,
                    attachments=[],
                    steps=[
                        PlanStepRow(
                            position=i, step_id=n.step_id, text_zh=n.text_zh, text_en=n.text_en, due_at=ts + n.within_ns
                        )
                        for i, n in enumerate(steps)
                    ],
                )
                s.add(row)
                await s.flush()
                return plan_record(row, ts), True
        except IntegrityError:  # another opener won the race for this alarm
            async with self._sessions() as s:
                existing = await self._by_alarm(s, alarm_id)
                assert existing is not None
                return plan_record(existing, ts), False

    async def tick(self, instance_id: int, step_id: str, user: str, source: str, note: str, ts: int) -> PlanRecord:
        """Record that `user` did a step; the instance closes when its last step is done. NotFound if
        there is no such instance; PlanRefused for an unknown step, a step already done or a closed instance."""
        async with self._sessions.begin() as s:
            row = await self._get(s, instance_id, lock=True)
            if row is None:
                raise NotFound(f"no plan instance {instance_id}")
            step = next((st for st in row.steps if st.step_id == step_id), None)
            if step is None:
                known = ", ".join(st.step_id for st in row.steps)
                raise PlanRefused(f"plan {row.plan_id} has no step {step_id!r} (steps: {known})")
            if step.done_at is not None:
                raise PlanRefused(f"step {step_id!r} was already done by {step.done_by} (at {step.done_at} ns)")
            if not row.is_open:
                raise PlanRefused(f"plan instance {instance_id} was closed by {row.closed_by}")
            step.done_at, step.done_by, step.done_from, step.note = ts, user, source, note
            if all(st.done_at is not None for st in row.steps):
                row.is_open, row.closed_at, row.closed_by, row.closed_from = False, ts, user, "plan"
            return plan_record(row, ts)

    async def close(self, instance_id: int, user: str, source: str, ts: int) -> PlanRecord:
        """Close an instance with steps left undone (they stay on record as not done); NotFound if
        there is no such instance; PlanRefused if it is already closed."""
        async with self._sessions.begin() as s:
            row = await self._get(s, instance_id, lock=True)
            if row is None:
                raise NotFound(f"no plan instance {instance_id}")
            if not row.is_open:
                raise PlanRefused(f"plan instance {instance_id} was already closed by {row.closed_by}")
            row.is_open, row.closed_at, row.closed_by, row.closed_from = False, ts, user, source
            return plan_record(row, ts)

    async def add_attachment(self, instance_id: int, step_id: str, new: NewFile) -> tuple[StepAttachment, PlanRecord]:
        """Record a photo or file on a step, of an open or a closed instance (a photo of what was
        done may come after); the caller keeps the bytes, in a file named by the returned id.
        Returns it and the instance; NotFound if there is no such instance; PlanRefused for an unknown
        step."""
        async with self._sessions.begin() as s:
            row = await self._get(s, instance_id, lock=True)
            if row is None:
                raise NotFound(f"no plan instance {instance_id}")
            if all(st.step_id != step_id for st in row.steps):
                known = ", ".join(st.step_id for st in row.steps)
                raise PlanRefused(f"plan {row.plan_id} has no step {step_id!r} (steps: {known})")
            added = StepAttachmentRow(instance_id=instance_id, step_id=step_id, **asdict(new))
            row.attachments.append(added)
            await s.flush()
            return _attachment(added), plan_record(row, new.added_at)

    async def attachments(self, instance_id: int, step_id: str) -> list[StepAttachment]:
        """The attachments of one step of an instance, oldest first."""
        query = (
            select(StepAttachmentRow)
            .where(StepAttachmentRow.instance_id == instance_id, StepAttachmentRow.step_id == step_id)
            .order_by(StepAttachmentRow.id)
        )
        async with self._sessions() as s:
            return [_attachment(row) for row in (await s.scalars(query)).all()]

    async def get(self, instance_id: int, now: int) -> PlanRecord:
        """The plan instance; NotFound if there is none of that id."""
        async with self._sessions() as s:
            row = await self._get(s, instance_id)
            if row is None:
                raise NotFound(f"no plan instance {instance_id}")
            return plan_record(row, now)

    async def of_alarm(self, alarm_id: int, now: int) -> PlanRecord | None:
        """The instance an alarm opened, if it opened one."""
        async with self._sessions() as s:
            row = await self._by_alarm(s, alarm_id)
            return plan_record(row, now) if row else None

    async def active(self, now: int) -> list[PlanRecord]:
        """Every open instance, oldest first."""
        return await self.recent(now, open_only=True)

    async def recent(self, now: int, *, open_only: bool = False, limit: int = 200) -> list[PlanRecord]:
        """Open instances oldest first; with `open_only` false, the `limit` latest opened of any state."""
        query = select(PlanInstanceRow).options(*_WHOLE)
        if open_only:
            query = query.where(PlanInstanceRow.is_open).order_by(PlanInstanceRow.opened_at, PlanInstanceRow.id)
        else:
            query = query.order_by(PlanInstanceRow.opened_at.desc(), PlanInstanceRow.id.desc()).limit(limit)
        async with self._sessions() as s:
            return [plan_record(row, now) for row in (await s.scalars(query)).all()]

    async def mark_overdue(self, now: int) -> list[PlanRecord]:
        """Open instances with a step that has passed its limit undone since the last call; each
        step is reported once."""
        async with self._sessions.begin() as s:
            late = (
                select(PlanStepRow.id, PlanStepRow.instance_id)
                .join(PlanInstanceRow, PlanInstanceRow.id == PlanStepRow.instance_id)
                .where(
                    PlanInstanceRow.is_open,
                    PlanStepRow.done_at.is_(None),
                    PlanStepRow.overdue_at.is_(None),
                    PlanStepRow.due_at <= now,
                )
            )
            found = (await s.execute(late)).all()
            if not found:
                return []
            await s.execute(update(PlanStepRow).where(PlanStepRow.id.in_([f[0] for f in found])).values(overdue_at=now))
            out = []
            for instance_id in sorted({f[1] for f in found}):
                row = await self._get(s, instance_id)
                assert row is not None
                out.append(plan_record(row, now))
            return out

    @staticmethod
    async def _get(s: AsyncSession, instance_id: int, *, lock: bool = False) -> PlanInstanceRow | None:
        """The instance with its steps; `lock` holds its row until commit (PostgreSQL), so that two
        people ticking at once are recorded one after the other."""
        query = select(PlanInstanceRow).where(PlanInstanceRow.id == instance_id)
        if lock:
            query = query.with_for_update()
        return (await s.scalars(query.options(*_WHOLE))).first()

    @staticmethod
    async def _by_alarm(s: AsyncSession, alarm_id: int) -> PlanInstanceRow | None:
        query = select(PlanInstanceRow).where(PlanInstanceRow.alarm_id == alarm_id)
        return (await s.scalars(query.options(*_WHOLE))).first()


# An instance is read with its steps and the files on them: an instance is shown whole.
_WHOLE = (selectinload(PlanInstanceRow.steps), selectinload(PlanInstanceRow.attachments))
