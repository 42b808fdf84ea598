"""Tasks (work orders) in the ops store: status, SLA due time, checklist, notes and full history.

The status machine is enforced here, inside the transaction that changes a task, so that two
people acting on one task at once cannot both succeed with moves that exclude each other.
At most one open task exists per rule and device (a partial unique index, as for alarms): a
condition that recurs is counted on the open task instead of adding a second one.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    ForeignKey,
    Index,
    Select,
    String,
    Text,
    and_,
    func,
    not_,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, Mapped, joinedload, mapped_column, relationship

from facility.store.files import FileColumns, FileRecord, NewFile, file_fields
from facility.store.ops import Base, OpsStore


class TaskKind(StrEnum):
    INSPECTION = "inspection"
    REPAIR = "repair"
    PREVENTIVE = "preventive"
    EMERGENCY = "emergency"
    COMPLAINT = "complaint"


class TaskStatus(StrEnum):
    OPEN = "open"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    VERIFIED = "verified"
    CANCELLED = "cancelled"


MOVES: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.OPEN: frozenset({TaskStatus.ASSIGNED, TaskStatus.CANCELLED}),
    TaskStatus.ASSIGNED: frozenset({TaskStatus.IN_PROGRESS, TaskStatus.CANCELLED}),
    TaskStatus.IN_PROGRESS: frozenset({TaskStatus.RESOLVED, TaskStatus.CANCELLED}),
    TaskStatus.RESOLVED: frozenset({TaskStatus.VERIFIED, TaskStatus.CANCELLED}),
    TaskStatus.VERIFIED: frozenset(),
    TaskStatus.CANCELLED: frozenset(),
}
UNFINISHED = (TaskStatus.OPEN, TaskStatus.ASSIGNED, TaskStatus.IN_PROGRESS)  # can run late
CLOSED = (TaskStatus.VERIFIED, TaskStatus.CANCELLED)
CALL_OUTS = (TaskKind.EMERGENCY, TaskKind.REPAIR, TaskKind.COMPLAINT)  # scheduled work has no arrival time


class TaskError(ValueError):
    """A change the task rules refuse; the message says why."""


class ChecklistOpen(TaskError):
    """Verifying a task whose checklist is not all done: the work may not have been checked, so
    only a manager may override it, with a reason kept in the history."""

    def __init__(self, task_id: int, open_items: tuple[Bilingual, ...]) -> None:
        self.open_items = open_items
        listed = "; ".join(_both(item) for item in open_items)
        super().__init__(
            f"task {task_id} cannot be verified: {len(open_items)} checklist item(s) not done: {listed}"
            f" / 任务 {task_id} 不能验收：检查项未完成：{listed}"
        )


class TaskNotFound(LookupError):
    pass


class TaskRow(Base):
    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(primary_key=True)
    title_zh: Mapped[str] = mapped_column(Text)
    title_en: Mapped[str] = mapped_column(Text)
    description_zh: Mapped[str] = mapped_column(Text, default="")
    description_en: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(20))
    priority: Mapped[str] = mapped_column(String(20))
    team: Mapped[str] = mapped_column(String(200), default="")
    vendor: Mapped[str | None] = mapped_column(String(200), index=True)
    assignee: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), index=True)
    due: Mapped[int] = mapped_column(BigInteger)  # UTC ns
    created_at: Mapped[int] = mapped_column(BigInteger, index=True)
    changed_at: Mapped[int] = mapped_column(BigInteger)
    arrived_at: Mapped[int | None] = mapped_column(BigInteger)  # first went in_progress: someone on site
    resolved_at: Mapped[int | None] = mapped_column(BigInteger)
    closed_at: Mapped[int | None] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(200))  # "rules" for a rule's task, else who made it
    rule_id: Mapped[str | None] = mapped_column(String(200))
    device_id: Mapped[str | None] = mapped_column(String(200))
    alarm_id: Mapped[int | None] = mapped_column(ForeignKey("alarms.id"))
    recurrences: Mapped[int] = mapped_column(default=0)
    condition_active: Mapped[bool]  # the rule's condition still holds: not verifiable yet
    is_open: Mapped[bool]  # neither verified nor cancelled
    history: Mapped[list[TaskHistoryRow]] = relationship(
        order_by="TaskHistoryRow.id", cascade="all, delete-orphan", lazy="selectin"
    )
    checklist: Mapped[list[ChecklistItemRow]] = relationship(
        order_by="ChecklistItemRow.position", cascade="all, delete-orphan", lazy="selectin"
    )

    __table_args__ = (
        Index(
            "one_open_task_per_rule_and_device",
            "rule_id",
            "device_id",
            unique=True,
            sqlite_where=text("is_open"),
            postgresql_where=text("is_open"),
        ),
    )


class TaskHistoryRow(Base):
    __tablename__ = "task_history"

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), index=True)
    ts: Mapped[int] = mapped_column(BigInteger)
    action: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(200), default="")  # client address, "rules", ...
    detail: Mapped[str] = mapped_column(Text, default="")


class ChecklistItemRow(Base):
    __tablename__ = "task_checklist"

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), index=True)
    position: Mapped[int]
    text_zh: Mapped[str] = mapped_column(Text)
    text_en: Mapped[str] = mapped_column(Text)
    done: Mapped[bool] = mapped_column(default=False)
    done_by: Mapped[str | None] = mapped_column(String(200))
    done_at: Mapped[int | None] = mapped_column(BigInteger)


class AttachmentRow(FileColumns, Base):
    """A photo or file on a task; its bytes are a file of the data folder named by this row's id."""

    __tablename__ = "task_attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), index=True)


@dataclass(frozen=True)
class Attachment(FileRecord):
    """An attachment of a task."""

    task_id: int


@dataclass(frozen=True)
class Bilingual:
    zh: str
    en: str

    @staticmethod
    def same(text: str) -> Bilingual:
        """A text written once (a checklist line, a resident's words), shown as written in both languages."""
        return Bilingual(text, text)


@dataclass(frozen=True)
class NewTask:
    """A task to create; `rule_id` and `device_id` together mean a rule raised it."""

    title: Bilingual
    kind: TaskKind
    priority: str
    due: int
    ts: int
    by: str
    source: str = ""
    description: Bilingual = Bilingual("", "")
    team: str = ""
    vendor: str | None = None
    rule_id: str | None = None
    device_id: str | None = None
    alarm_id: int | None = None
    checklist: tuple[Bilingual, ...] = ()


@dataclass(frozen=True)
class VendorSla:
    """How one vendor answered call-outs: arrival is the first move to in_progress."""

    vendor: str
    limit_ns: int
    tasks: int
    met: int
    missed: int
    open_past_limit: int  # nobody arrived and the limit has passed
    waiting: int  # nobody arrived yet, still within the limit
    mean_response_ns: int | None  # over tasks someone arrived for
    worst_response_ns: int | None


def task_dict(row: TaskRow, now: int, *, with_history: bool = False) -> dict[str, Any]:
    source: dict[str, Any] = (
        {"kind": "rule", "rule": row.rule_id, "device": row.device_id}
        if row.rule_id is not None
        else {"kind": "manual", "by": row.created_by}
    )
    out: dict[str, Any] = {
        "id": row.id,
        "title": {"zh": row.title_zh, "en": row.title_en},
        "description": {"zh": row.description_zh, "en": row.description_en},
        "kind": row.kind,
        "priority": row.priority,
        "team": row.team,
        "vendor": row.vendor,
        "assignee": row.assignee,
        "status": row.status,
        "due": row.due,
        "overdue": row.status in UNFINISHED and now > row.due,
        "source": source,
        "device": row.device_id,
        "alarm_id": row.alarm_id,
        "recurrences": row.recurrences,
        "condition_active": row.condition_active,
        "created_at": row.created_at,
        "changed_at": row.changed_at,
        "arrived_at": row.arrived_at,
        "resolved_at": row.resolved_at,
        "closed_at": row.closed_at,
        "checklist": [
            {
                "n": i.position,
                "text": {"zh": i.text_zh, "en": i.text_en},
                "done": i.done,
                "by": i.done_by,
                "at": i.done_at,
            }
            for i in row.checklist
        ],
        "notes": [{"ts": h.ts, "by": h.actor, "text": h.detail} for h in row.history if h.action == "note"],
    }
    if with_history:
        out["history"] = [
            {"ts": h.ts, "action": h.action, "actor": h.actor, "source": h.source, "detail": h.detail}
            for h in row.history
        ]
    return out


class TaskStore:
    """Task records on the ops store's database; every method that changes a task records who,
    when, from where and what in its history, and returns the task as a dict."""

    def __init__(self, ops: OpsStore) -> None:
        self._sessions = ops.sessions

    async def create(self, new: NewTask) -> dict[str, Any]:
        async with self._sessions.begin() as s:
            row = _row(new)
            s.add(row)
            await s.flush()
            return task_dict(row, new.ts)

    async def raise_from_rule(self, new: NewTask) -> tuple[dict[str, Any], bool]:
        """Create the open task of (rule, device), or count a recurrence on it; returns the task and
        whether it changed (a condition reported active again without clearing changes nothing)."""
        assert new.rule_id is not None and new.device_id is not None
        async with self._sessions.begin() as s:
            row = await _claim(s, TaskRow.rule_id == new.rule_id, TaskRow.device_id == new.device_id, TaskRow.is_open)
            if row is None:
                row = _row(new)
                s.add(row)
                await s.flush()
                return task_dict(row, new.ts), True
            if row.condition_active:
                return task_dict(row, new.ts), False
            row.recurrences += 1
            row.condition_active = True
            row.alarm_id = new.alarm_id or row.alarm_id
            _record(row, new.ts, "recurred", new.by, new.source, f"recurrence {row.recurrences}: {new.description.en}")
            return task_dict(row, new.ts), True

    async def condition_cleared(self, rule_id: str, device_id: str, ts: int) -> dict[str, Any] | None:
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
            return task_dict(row, ts)

    async def assign(self, task_id: int, assignee: str, by: str, source: str, ts: int) -> dict[str, Any]:
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
            return task_dict(row, ts)

    async def set_status(
        self, task_id: int, status: TaskStatus, by: str, source: str, ts: int, override: str | None = None
    ) -> dict[str, Any]:
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
            left_open = tuple(Bilingual(i.text_zh, i.text_en) for i in row.checklist if not i.done)
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
            return task_dict(row, ts)

    async def tick(self, task_id: int, item: int, done: bool, by: str, source: str, ts: int) -> dict[str, Any]:
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
            return task_dict(row, ts)

    async def add_note(self, task_id: int, note: str, by: str, source: str, ts: int) -> dict[str, Any]:
        async with self._sessions.begin() as s:
            row = await _locked(s, task_id)
            _record(row, ts, "note", by, source, note)
            return task_dict(row, ts)

    async def add_attachment(self, task_id: int, new: NewFile, source: str) -> tuple[Attachment, dict[str, Any]]:
        """Record an attachment on the task (its history says who added what); the caller keeps
        the bytes, in a file named by the returned id. Returns it and the task."""
        async with self._sessions.begin() as s:
            row = await _locked(s, task_id)
            added = AttachmentRow(task_id=task_id, **asdict(new))
            s.add(added)
            detail = f"{new.name} ({new.content_type}, {new.size} bytes)"
            _record(row, new.added_at, "attached", new.added_by, source, detail)
            await s.flush()
            return _attachment(added), task_dict(row, new.added_at)

    async def attachments(self, task_id: int) -> list[Attachment]:
        """The task's attachments, oldest first."""
        query = select(AttachmentRow).where(AttachmentRow.task_id == task_id).order_by(AttachmentRow.id)
        async with self._sessions() as s:
            return [_attachment(row) for row in (await s.scalars(query)).all()]

    async def get(self, task_id: int, now: int) -> dict[str, Any] | None:
        async with self._sessions() as s:
            row = (await s.scalars(_whole().where(TaskRow.id == task_id))).unique().one_or_none()
            return task_dict(row, now, with_history=True) if row else None

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
            vendor: _sla(vendor, limit, [(c, a) for v, c, a in rows if v == vendor], now)
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
    ) -> list[dict[str, Any]]:
        """Tasks matching every filter given, the soonest due first (or with `latest_first`, the latest
        changed first). `devices` limits to the tasks of those devices and those of none (site-wide
        work such as a complaint). (Defined last: inside the class body its name hides the builtin
        `list` from later annotations.)"""
        where = task_filters(now, status, kind, team, vendor, overdue, devices)
        query = _whole().where(*where).order_by(*board_order(latest_first)).limit(limit).offset(offset)
        async with self._sessions() as s:
            return [task_dict(row, now) for row in (await s.scalars(query)).unique().all()]

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


def task_filters(
    now: int,
    status: Iterable[TaskStatus],
    kind: TaskKind | None,
    team: str | None,
    vendor: str | None,
    overdue: bool | None,
    devices: Collection[str] | None,
) -> list[ColumnElement[bool]]:
    """The conditions of the task board's filters (each None or empty: any), for `list`, `count`
    and the board's export (reports.lists), so that the file holds the tasks the board shows."""
    where: list[ColumnElement[bool]] = []
    if statuses := [s.value for s in status]:
        where.append(TaskRow.status.in_(statuses))
    if kind is not None:
        where.append(TaskRow.kind == kind.value)
    if team is not None:
        where.append(TaskRow.team == team)
    if vendor is not None:
        where.append(TaskRow.vendor == vendor)
    if overdue is not None:
        late = and_(TaskRow.status.in_([s.value for s in UNFINISHED]), TaskRow.due < now)
        where.append(late if overdue else not_(late))
    if devices is not None:
        where.append(of_devices(devices))
    return where


def board_order(latest_first: bool) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    """The soonest due first, or the latest changed first."""
    if latest_first:
        return TaskRow.changed_at.desc(), TaskRow.id.desc()
    return TaskRow.due.asc(), TaskRow.id.asc()


def of_devices(devices: Collection[str]) -> ColumnElement[bool]:
    """The tasks of those devices, and the site-wide ones (no device, such as a complaint)."""
    return or_(TaskRow.device_id.is_(None), TaskRow.device_id.in_(sorted(devices)))


def _sla(vendor: str, limit: int, tasks: list[tuple[int, int | None]], now: int) -> VendorSla:
    responses = [arrived - created for created, arrived in tasks if arrived is not None]
    unanswered = [created for created, arrived in tasks if arrived is None]
    past = sum(1 for created in unanswered if now - created > limit)
    return VendorSla(
        vendor=vendor,
        limit_ns=limit,
        tasks=len(tasks),
        met=sum(1 for r in responses if r <= limit),
        missed=sum(1 for r in responses if r > limit),
        open_past_limit=past,
        waiting=len(unanswered) - past,
        mean_response_ns=sum(responses) // len(responses) if responses else None,
        worst_response_ns=max(responses, default=None),
    )


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


def _both(text: Bilingual) -> str:
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
