"""Tasks (work orders) in the ops store: status, SLA due time, checklist, notes and full history.

The status machine is enforced here, inside the transaction that changes a task, so that two
people acting on one task at once cannot both succeed with moves that exclude each other.
At most one open task exists per rule and device (a partial unique index, as for alarms): a
condition that recurs is counted on the open task instead of adding a second one.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import asdict, dataclass

from sqlalchemy import (
    ColumnElement,
    Select,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, joinedload

from facility.errors import Conflict, NotFound
from facility.records import (
    CALL_OUTS,
    CLOSED,
    MOVES,
    UNFINISHED,
    ChecklistEntry,
    FileRecord,
    NewFile,
    NewTask,
    TaskKind,
    TaskNote,
    TaskRecord,
    TaskStatus,
    VendorSla,
)
from facility.store.files import file_fields
from facility.store.ops import OpsStore
from facility.store.tables import AttachmentRow, ChecklistItemRow, TaskHistoryRow, TaskRow
from facility.store.task_queries import board_order, of_devices, sla_of, task_filters
from facility.vocabulary import Text


class TaskError(Conflict):
    """A change the task rules refuse; the message says why (409 at the API, or 422 naming the
    field where a create names one: "field: message")."""


class ChecklistOpen(TaskError):
    """Verifying a task whose checklist is not all done: the work may not have been checked, so
    only a manager may override it, with a reason kept in the history."""

    def __init__(self, task_id: int, open_items: tuple[Text, ...]) -> None:
        self.open_items = open_items
        listed = "; ".join(_both(item) for item in open_items)
        super().__init__(
            f"task {task_id} cannot be verified: {len(open_items)} checklist item(s) not done: {listed}"
            f" / 任务 {task_id} 不能验收：检查项未完成：{listed}"
        )


class TaskNotFound(NotFound):
    """No task of that id (404 at the API)."""


@dataclass(frozen=True)
class Attachment(FileRecord):
    """An attachment of a task."""

    task_id: int


def task_record(row: TaskRow, now: int, *, with_history: bool = False) -> TaskRecord:
    """The task as the rules, the desk and the notifiers see it, `overdue` judged at `now` (its
    history only when asked), so that no caller holds a row bound to a session."""
    return TaskRecord(
        id=row.id,
        title=Text(row.title_zh, row.title_en),
        description=Text(row.description_zh, row.description_en),
        kind=row.kind,
        priority=row.priority,
        team=row.team,
        vendor=row.vendor,
        assignee=row.assignee,
        status=row.status,
        due=row.due,
        overdue=row.status in UNFINISHED and now > row.due,
        rule=row.rule_id,
        created_by=row.created_by,
        device=row.device_id,
        alarm_id=row.alarm_id,
        recurrences=row.recurrences,
        condition_active=row.condition_active,
        created_at=row.created_at,
        changed_at=row.changed_at,
        arrived_at=row.arrived_at,
        resolved_at=row.resolved_at,
        closed_at=row.closed_at,
        checklist=tuple(
            ChecklistEntry(i.position, Text(i.text_zh, i.text_en), i.done, i.done_by, i.done_at) for i in row.checklist
        ),
        notes=tuple(TaskNote(h.ts, h.actor, h.detail) for h in row.history if h.action == "note"),
        history=tuple(h.entry() for h in row.history) if with_history else (),
    )


class TaskStore:
    """Task records on the ops store's database; every method that changes a task records who,
    when, from where and what in its history, and returns the task as a TaskRecord."""

    def __init__(self, ops: OpsStore) -> None:
        self._sessions = ops.sessions

    async def create(self, new: NewTask) -> TaskRecord:
        async with self._sessions.begin() as s:
            row = _row(new)
            s.add(row)
            await s.flush()
            return task_record(row, new.ts)

    async def raise_from_rule(self, new: NewTask) -> tuple[TaskRecord, bool]:
        """Create the open task of (rule, device), or count a recurrence on it; returns the task and
        whether it changed (a condition reported active again without clearing changes nothing)."""
        assert new.rule_id is not None and new.device_id is not None
        async with self._sessions.begin() as s:
            row = await _claim(s, TaskRow.rule_id == new.rule_id, TaskRow.device_id == new.device_id, TaskRow.is_open)
            if row is None:
                row = _row(new)
                s.add(row)
                await s.flush()
                return task_record(row, new.ts), True
            if row.condition_active:
                return task_record(row, new.ts), False
            row.recurrences += 1
            row.condition_active = True
            row.alarm_id = new.alarm_id or row.alarm_id
            _record(row, new.ts, "recurred", new.by, new.source, f"recurrence {row.recurrences}: {new.description.en}")
            return task_record(row, new.ts), True

    async def condition_cleared(self, rule_id: str, device_id: str, ts: int) -> TaskRecord | None:
        """Note that the condition behind the open task of (rule, device) has cleared; None if no
        open task waits for it."""
        async with self._sessions.begin() as s:
            row = await _claim(
                s, TaskRow.rule_id == rule_id, TaskRow.device_id == device_id, TaskRow.is_open, TaskRow.condition_active
            )
            if row is None:
                return None
            row.condition_active = False
            _record(row, ts, "condition cleared", "rules", "rules", "")
            return task_record(row, ts)

    async def assign(self, task_id: int, assignee: str, by: str, source: str, ts: int) -> TaskRecord:
        """Give the task to someone; an open task becomes assigned, a task under way changes hands."""
        async with self._sessions.begin() as s:
            row = await _locked(s, task_id)
            status = TaskStatus(row.status)
            if status not in UNFINISHED:
                raise TaskError(f"task {task_id} is {status}: it cannot be assigned")
            if status is TaskStatus.OPEN:
                row.status = TaskStatus.ASSIGNED.value
            before, row.assignee = row.assignee, assignee
            _record(row, ts, "assigned", by, source, f"from {before} to {assignee}" if before else f"to {assignee}")
            return task_record(row, ts)

    async def set_status(
        self, task_id: int, status: TaskStatus, by: str, source: str, ts: int, override: str | None = None
    ) -> TaskRecord:
        """Move the task on. Verifying it with checklist items not done is refused unless `override`
        gives the reason (whoever calls checks that the user may override); the reason and the items
        left open are kept in the history."""
        async with self._sessions.begin() as s:
            row = await _locked(s, task_id)
            current = TaskStatus(row.status)
            if status not in MOVES[current]:
                allowed = ", ".join(sorted(MOVES[current])) or "none: the task is closed"
                raise TaskError(f"task {task_id} cannot go from {current} to {status} (allowed: {allowed})")
            if status is TaskStatus.ASSIGNED and row.assignee is None:
                raise TaskError(f"task {task_id} cannot go from {current} to {status}: assign it to someone")
            if status is TaskStatus.VERIFIED and row.condition_active:
                raise TaskError(
                    f"task {task_id} cannot go from {current} to {status}: "
                    f"the condition of rule {row.rule_id} on {row.device_id} has not cleared"
                )
            left_open = tuple(Text(i.text_zh, i.text_en) for i in row.checklist if not i.done)
            if status is TaskStatus.VERIFIED and left_open:
                if override is None or not override.strip():
                    raise ChecklistOpen(task_id, left_open)
                listed = "; ".join(_both(item) for item in left_open)
                _record(row, ts, "checklist overridden", by, source, f"{override.strip()} (open: {listed})")
            row.status = status.value
            if status is TaskStatus.IN_PROGRESS and row.arrived_at is None:
                row.arrived_at = ts
            if status is TaskStatus.RESOLVED:
                row.resolved_at = ts
            if status in CLOSED:
                row.closed_at, row.is_open = ts, False
            _record(row, ts, "status", by, source, f"{current} -> {status}")
            return task_record(row, ts)

    async def tick(self, task_id: int, item: int, done: bool, by: str, source: str, ts: int) -> TaskRecord:
        """Mark checklist item `item` (its position, from 0) done or not done."""
        async with self._sessions.begin() as s:
            row = await _locked(s, task_id)
            if not row.is_open:
                raise TaskError(f"task {task_id} is {row.status}: its checklist is closed")
            if not 0 <= item < len(row.checklist):
                raise TaskError(f"task {task_id} has no checklist item {item} (it has {len(row.checklist)})")
            entry = row.checklist[item]
            entry.done, entry.done_by, entry.done_at = done, by if done else None, ts if done else None
            _record(row, ts, "ticked" if done else "unticked", by, source, entry.text_en)
            return task_record(row, ts)

    async def add_note(self, task_id: int, note: str, by: str, source: str, ts: int) -> TaskRecord:
        async with self._sessions.begin() as s:
            row = await _locked(s, task_id)
            _record(row, ts, "note", by, source, note)
            return task_record(row, ts)

    async def add_attachment(self, task_id: int, new: NewFile, source: str) -> tuple[Attachment, TaskRecord]:
        """Record an attachment on the task (its history says who added what); the caller keeps
        the bytes, in a file named by the returned id. Returns it and the task."""
        async with self._sessions.begin() as s:
            row = await _locked(s, task_id)
            added = AttachmentRow(task_id=task_id, **asdict(new))
            s.add(added)
            detail = f"{new.name} ({new.content_type}, {new.size} bytes)"
            _record(row, new.added_at, "attached", new.added_by, source, detail)
            await s.flush()
            return _attachment(added), task_record(row, new.added_at)

    async def attachments(self, task_id: int) -> list[Attachment]:
        """The task's attachments, oldest first."""
        query = select(AttachmentRow).where(AttachmentRow.task_id == task_id).order_by(AttachmentRow.id)
        async with self._sessions() as s:
            return [_attachment(row) for row in (await s.scalars(query)).all()]

    async def get(self, task_id: int, now: int) -> TaskRecord:
        """The task with its full history; NotFound if there is none of that id."""
        async with self._sessions() as s:
            row = (await s.scalars(_whole().where(TaskRow.id == task_id))).unique().one_or_none()
            if row is None:
                raise NotFound(f"no task {task_id}")
            return task_record(row, now, with_history=True)

    async def active_conditions(self) -> list[tuple[str, str]]:
        """(rule, device) of every open task whose condition still holds, so the engine can resume
        it after a restart and see it clear."""
        async with self._sessions() as s:
            query = select(TaskRow.rule_id, TaskRow.device_id).where(TaskRow.is_open, TaskRow.condition_active)
            return [(r, d) for r, d in (await s.execute(query)).all() if r is not None and d is not None]

    async def vendor_sla(
        self,
        limits: Mapping[str, int],
        from_ns: int,
        to_ns: int,
        now: int,
        kinds: Iterable[TaskKind] = CALL_OUTS,
        devices: Collection[str] | None = None,
    ) -> dict[str, VendorSla]:
        """Response of each vendor in `limits` (vendor -> allowed time to arrive, ns) to the tasks
        raised in [from_ns, to_ns), of `devices` (see `of_devices`) if given. A task cancelled
        before anyone arrived is not counted."""
        query = select(TaskRow.vendor, TaskRow.created_at, TaskRow.arrived_at).where(
            TaskRow.vendor.in_(list(limits)),
            TaskRow.kind.in_([k.value for k in kinds]),
            TaskRow.created_at >= from_ns,
            TaskRow.created_at < to_ns,
            or_(TaskRow.arrived_at.is_not(None), TaskRow.status != TaskStatus.CANCELLED.value),
        )
        if devices is not None:
            query = query.where(of_devices(devices))
        async with self._sessions() as s:
            rows = (await s.execute(query)).all()
        return {
            vendor: sla_of(vendor, limit, [(c, a) for v, c, a in rows if v == vendor], now)
            for vendor, limit in limits.items()
        }

    async def list(
        self,
        now: int,
        *,
        status: Iterable[TaskStatus] = (),
        kind: TaskKind | None = None,
        team: str | None = None,
        vendor: str | None = None,
        overdue: bool | None = None,
        devices: Collection[str] | None = None,
        latest_first: bool = False,
        limit: int = 500,
        offset: int = 0,
    ) -> list[TaskRecord]:
        """Tasks matching every filter given, the soonest due first (or with `latest_first`, the latest
        changed first). `devices` limits to the tasks of those devices and those of none (site-wide
        work such as a complaint). (Defined last: inside the class body its name hides the builtin
        `list` from later annotations.)"""
        where = task_filters(now, status, kind, team, vendor, overdue, devices)
        query = _whole().where(*where).order_by(*board_order(latest_first)).limit(limit).offset(offset)
        async with self._sessions() as s:
            return [task_record(row, now) for row in (await s.scalars(query)).unique().all()]

    async def count(
        self,
        now: int,
        *,
        status: Iterable[TaskStatus] = (),
        kind: TaskKind | None = None,
        team: str | None = None,
        vendor: str | None = None,
        overdue: bool | None = None,
        devices: Collection[str] | None = None,
    ) -> int:
        """How many tasks `list` would give with these filters and no limit."""
        where = task_filters(now, status, kind, team, vendor, overdue, devices)
        async with self._sessions() as s:
            return (await s.execute(select(func.count()).select_from(TaskRow).where(*where))).scalar_one()


def _row(new: NewTask) -> TaskRow:
    row = TaskRow(
        title_zh=new.title.zh,
        title_en=new.title.en,
        description_zh=new.description.zh,
        description_en=new.description.en,
        kind=new.kind.value,
        priority=new.priority,
        team=new.team,
        vendor=new.vendor,
        status=TaskStatus.OPEN.value,
        due=new.due,
        created_at=new.ts,
        changed_at=new.ts,
        created_by=new.by,
        rule_id=new.rule_id,
        device_id=new.device_id,
        alarm_id=new.alarm_id,
        recurrences=0,
        condition_active=new.rule_id is not None,
        is_open=True,
        history=[],
        checklist=[ChecklistItemRow(position=i, text_zh=t.zh, text_en=t.en) for i, t in enumerate(new.checklist)],
    )
    _record(row, new.ts, "created", new.by, new.source, new.title.en)
    return row


def _attachment(row: AttachmentRow) -> Attachment:
    return Attachment(task_id=row.task_id, **file_fields(row))


def _both(text: Text) -> str:
    """A text in both languages, once when they are the same."""
    return text.zh if text.zh == text.en else f"{text.zh} / {text.en}"


def _record(row: TaskRow, ts: int, action: str, actor: str, source: str, detail: str) -> None:
    row.history.append(TaskHistoryRow(ts=ts, action=action, actor=actor, source=source, detail=detail))
    row.changed_at = ts


def _whole() -> Select[TaskRow]:
    """Tasks with their history and checklist in one statement. Loaded in several (the
    relationships' own `selectin`), each statement may see the database at another moment: a
    recurrence committed in between gives a task its `recurred` entry with the count from before
    it. One statement is one moment on SQLite and PostgreSQL alike."""
    return select(TaskRow).options(joinedload(TaskRow.history), joinedload(TaskRow.checklist))


async def _claim(s: AsyncSession, *where: ColumnElement[bool] | InstrumentedAttribute[bool]) -> TaskRow | None:
    """The task matching `where`, held by this transaction until it ends, then read whole.

    The hold is taken by a write that changes nothing, before the read: SQLite has no FOR UPDATE
    (two changes would each read the task before the other wrote it, and each announce a task
    without the other's change), and on PostgreSQL a FOR UPDATE that waited re-reads the task's
    row but not its history joined to it. After the write, no other change can commit until this
    one has, and the read sees every change committed before it."""
    hold = update(TaskRow).where(*where).values(changed_at=TaskRow.changed_at)
    await s.execute(hold.execution_options(synchronize_session=False))
    return (await s.scalars(_whole().where(*where))).unique().one_or_none()


async def _locked(s: AsyncSession, task_id: int) -> TaskRow:
    row = await _claim(s, TaskRow.id == task_id)
    if row is None:
        raise TaskNotFound(f"no task {task_id}")
    return row
