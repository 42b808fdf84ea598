"""The kernel's typed records of the ops store: what a store returns and a caller hands it.

They are frozen dataclasses, not the ORM rows, so that the rows stay private to the stores (the
schema can change under them) and a caller cannot change a record behind the store's back.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields, is_dataclass
from enum import StrEnum
from typing import Any

from facility.vocabulary import AlarmAction, Text


@dataclass(frozen=True)
class NewAlarm:
    """What the rules know when a condition becomes active."""

    rule_id: str
    device_id: str
    priority: str
    title_zh: str
    title_en: str
    message_zh: str
    message_en: str
    ts: int
    suppressed: bool = False  # suppressed by design: kept and shown as such, not announced as new


def plain(value: Any) -> Any:
    """A record as the bus and the API carry it: each record or text a dict of its fields, each
    tuple a list, recursively; anything else as it is. One function for every record, so that a
    field added to one is carried without a second list of its fields to keep in step."""
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    names = _field_names(type(value))
    if names is None:
        return value
    return {name: plain(getattr(value, name)) for name in names}


_FIELD_NAMES: dict[type, tuple[str, ...] | None] = {}  # by type: fields() is too slow to ask per value


def _field_names(kind: type) -> tuple[str, ...] | None:
    names = _FIELD_NAMES.get(kind, ())
    if names == ():
        names = _FIELD_NAMES[kind] = tuple(f.name for f in fields(kind)) if is_dataclass(kind) else None
    return names


class Plain:
    """A record that travels as `plain(self)` (a subclass may leave fields out or add some)."""

    __slots__ = ()

    def as_json(self) -> dict[str, Any]:
        shown: dict[str, Any] = plain(self)
        return shown


@dataclass(frozen=True, slots=True)
class HistoryEntry(Plain):
    """One entry of an alarm's or a task's history: when, what (an AlarmAction or a task action),
    who, from where, and the detail (English where the system wrote it, a person's own words as
    written)."""

    ts: int
    action: str
    actor: str
    source: str
    detail: str


@dataclass(frozen=True, slots=True)
class AlarmRecord(Plain):
    """An alarm as the ops store holds it: what the rules, the desk, the reports and the notifiers
    read. `history` is loaded only when the store was asked for it (a list of alarms does not need
    it), and empty otherwise: a stored alarm has at least its `raised` entry. On the bus and at the
    API it travels as `as_json()`, one shape for both."""

    id: int
    rule: str
    device: str
    priority: str
    state: str
    active: bool
    acknowledged: bool
    title: Text
    message: Text
    raised_at: int
    changed_at: int
    acked_at: int | None
    acked_by: str | None
    cleared_at: int | None
    activated_at: int
    shelved: bool
    shelved_until: int | None
    shelved_by: str | None
    shelve_reason: str | None
    suppressed: bool
    out_of_service: bool
    chattering: bool
    escalated: bool
    history: tuple[HistoryEntry, ...] = ()

    @property
    def announced(self) -> bool:
        """Whether people are told of it when it goes active: not when shelved, suppressed by
        design or out of service (ISA-18.2)."""
        return not (self.shelved or self.suppressed or self.out_of_service)

    def as_json(self) -> dict[str, Any]:
        """The alarm as the bus and the API carry it: texts as {zh, en}, history only if loaded."""
        out = plain(self)
        if not self.history:
            del out["history"]
        return out


@dataclass(frozen=True, slots=True)
class ChecklistEntry(Plain):
    """One item of a task's checklist: done or not, by whom and when."""

    n: int
    text: Text
    done: bool
    by: str | None
    at: int | None


@dataclass(frozen=True, slots=True)
class TaskNote(Plain):
    """A note on a task (a `note` entry of its history), as the task card lists them."""

    ts: int
    by: str
    text: str


@dataclass(frozen=True, slots=True)
class TaskRecord(Plain):
    """A task as the ops store holds it: what the rules, the desk and the notifiers read. `rule` is
    set for a rule's task (its `device` then the device of the condition), else `created_by` made it
    by hand; `overdue` is judged at the time the store was asked. `history` is loaded only when asked
    for, and empty otherwise (a stored task has at least its `created` entry). On the bus and at the
    API it travels as `as_json()`."""

    id: int
    title: Text
    description: Text
    kind: str
    priority: str
    team: str
    vendor: str | None
    assignee: str | None
    status: str
    due: int
    overdue: bool
    rule: str | None
    created_by: str
    device: str | None
    alarm_id: int | None
    recurrences: int
    condition_active: bool
    created_at: int
    changed_at: int
    arrived_at: int | None
    resolved_at: int | None
    closed_at: int | None
    checklist: tuple[ChecklistEntry, ...]
    notes: tuple[TaskNote, ...]
    history: tuple[HistoryEntry, ...] = ()

    @property
    def source(self) -> dict[str, Any]:
        """Where it came from: {kind: rule, rule, device} or {kind: manual, by}."""
        if self.rule is not None:
            return {"kind": "rule", "rule": self.rule, "device": self.device}
        return {"kind": "manual", "by": self.created_by}

    def as_json(self) -> dict[str, Any]:
        """The task as the bus and the API carry it: texts as {zh, en}, its source, history only if loaded."""
        out = plain(self)
        del out["rule"], out["created_by"]
        if not self.history:
            del out["history"]
        out["source"] = self.source
        return out


@dataclass(frozen=True)
class NewFile:
    """A file's record before the ops store gives it an id (facility.store.files.FileColumns)."""

    name: str
    content_type: str
    size: int
    sha256: str
    added_by: str
    added_at: int


@dataclass(frozen=True)
class FileRecord(NewFile):
    """An attachment's record, with the id the store gave it: what its list shows and a download
    answers with."""

    id: int


@dataclass(frozen=True, slots=True)
class PlanStepRecord(Plain):
    """One step of a plan instance: its text and time limit, who did it when (with a note), whether
    it is overdue (judged when the store was asked) or was done late, and the files on it."""

    id: str
    text: Text
    due_at: int
    done_at: int | None
    done_by: str | None
    done_from: str | None
    note: str | None
    overdue: bool
    late: bool
    attachments: tuple[FileRecord, ...]


@dataclass(frozen=True, slots=True)
class PlanRecord(Plain):
    """An emergency plan's instance, opened by an alarm: its steps, and how it closed (with its last
    step, or by a person with steps left undone). On the bus and at the API it travels as `as_json()`."""

    id: int
    plan: str
    alarm: int
    device: str
    title: Text
    state: str  # open or closed
    opened_at: int
    closed_at: int | None
    closed_by: str | None
    closed_from: str | None
    steps: tuple[PlanStepRecord, ...]

    def step(self, step_id: str) -> PlanStepRecord | None:
        return next((s for s in self.steps if s.id == step_id), None)


@dataclass(frozen=True)
class AuditEntry:
    """One entry of the audit log: who asked for what change, when, from where, and how it ended."""

    id: int
    ts: int
    actor: str
    source: str
    action: str
    target: str
    detail: dict[str, Any]
    outcome: str


@dataclass(frozen=True)
class DeadLetter:
    """Input the system could not use: when, from which source and key, why, and what it was."""

    ts: int
    source: str
    key: str
    reason: str
    payload: str


def spread_detail(new: tuple[str, str], was: tuple[str, str]) -> str:
    """The detail of a `spread` history entry: the alarm's new text and the text it replaced,
    (zh, en) each, as JSON, so that the desk's history shows both in either language (see
    spread_texts and replaced_texts)."""
    return json.dumps({"zh": new[0], "en": new[1], "was": {"zh": was[0], "en": was[1]}}, ensure_ascii=False)


def _bilingual(found: Any) -> dict[str, str] | None:
    if isinstance(found, dict) and isinstance(found.get("zh"), str) and isinstance(found.get("en"), str):
        return {"zh": found["zh"], "en": found["en"]}
    return None


def _spread(detail: str) -> dict[str, Any]:
    try:
        found = json.loads(detail)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def spread_texts(detail: str) -> dict[str, str]:
    """The {zh, en} new text of a `spread` history entry's detail (the detail itself in both if it
    is not what spread_detail wrote)."""
    return _bilingual(_spread(detail)) or {"zh": detail, "en": detail}


def replaced_texts(detail_en: str, history: Sequence[HistoryEntry]) -> dict[str, str] | None:
    """The {zh, en} of an alarm text a later spread replaced, by its English (a `raised` entry's
    detail, once the alarm's message is no longer that text); None when no spread replaced it."""
    for entry in history:
        if entry.action == AlarmAction.SPREAD:
            was = _bilingual(_spread(entry.detail).get("was"))
            if was is not None and was["en"] == detail_en:
                return was
    return None


class TaskKind(StrEnum):
    """What a task is for; the values are stored and exported, so they are never renamed."""

    INSPECTION = "inspection"
    REPAIR = "repair"
    PREVENTIVE = "preventive"
    EMERGENCY = "emergency"
    COMPLAINT = "complaint"


class TaskStatus(StrEnum):
    """Where a task stands; MOVES says which status may follow which."""

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


NO_DESCRIPTION = Text("", "")  # a task that needs none: its title says it all


@dataclass(frozen=True)
class NewTask:
    """A task to create; `rule_id` and `device_id` together mean a rule raised it."""

    title: Text
    kind: TaskKind
    priority: str
    due: int
    ts: int
    by: str
    source: str = ""
    description: Text = NO_DESCRIPTION
    team: str = ""
    vendor: str | None = None
    rule_id: str | None = None
    device_id: str | None = None
    alarm_id: int | None = None
    checklist: tuple[Text, ...] = ()


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
