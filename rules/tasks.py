"""Work orders from rules and by hand: who answers (team, the device's vendor), by when (the rule's
SLA or the priority's), and what to check (the rule's checklist).

The task rules themselves (status machine, one open task per rule and device) are enforced by
facility.store.tasks inside each transaction; this service adds what the site and the rules know
and announces every change on the bus as an event of kind "task" carrying the task dict.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Literal, TypeVar

from facility.bus import Bus
from facility.errors import Invalid
from facility.model import Priority, now_ns
from facility.records import NewFile, NewTask, TaskKind, TaskRecord, TaskStatus, VendorSla
from facility.site import Site
from facility.store.tasks import Attachment, TaskStore
from facility.vocabulary import EventKind, Text
from rules.attachments import AttachmentFolder
from rules.engine import Change
from rules.ruleset import rule_texts

SLA_BY_PRIORITY_S: dict[Priority, float] = {
    Priority.EMERGENCY: 30 * 60.0,
    Priority.HIGH: 4 * 3600.0,
    Priority.MEDIUM: 24 * 3600.0,
    Priority.LOW: 72 * 3600.0,
}

E = TypeVar("E", bound=StrEnum)


class UnknownAssignee(Invalid):
    """An assignee who is none of the site's people, teams or vendors: a task given to a name
    nobody answers to would wait unseen. Invalid input of the field `assignee`; the message,
    as every field error of the tasks, begins with the field's name."""

    def __init__(self, message: str) -> None:
        super().__init__(message, field="assignee")


@dataclass(frozen=True)
class Assignee:
    """One choice for a task's assignee: a person, a team (named by its id) or a vendor."""

    id: str
    kind: Literal["person", "team", "vendor"]
    name: Text


class TaskService:
    def __init__(self, site: Site, store: TaskStore, bus: Bus, attachments_dir: Path | None = None) -> None:
        """`attachments_dir`: the folder of the data folder where the bytes of task attachments
        are kept (their records are in the ops store); without one, uploads are refused."""
        self._site = site
        self._store = store
        self._bus = bus
        self.files = AttachmentFolder(attachments_dir, site.api.max_attachment_kb, "a task")

    async def from_rule(self, change: Change, alarm_id: int | None = None) -> TaskRecord | None:
        """The task of a condition that became active, when its rule's outcome is `task` or `both`:
        created, or its recurrence counted on the open one. None when the rule raises no task or
        nothing changed. `alarm_id` links the alarm the same change raised."""
        spec = change.rule.spec
        # `outcome` and `task` are read with defaults until RuleSpec carries them.
        if not change.active or getattr(spec, "outcome", "alarm") not in ("task", "both"):
            return None
        task = getattr(spec, "task", None)
        priority = Priority(spec.priority)
        kind = getattr(task, "kind", None) or (
            TaskKind.EMERGENCY if priority is Priority.EMERGENCY else TaskKind.REPAIR
        )
        sla = getattr(task, "sla", None)
        device = self._site.device(change.device)
        title, message = self._texts(change)
        new = NewTask(
            title=title,
            description=message,
            kind=_choice(TaskKind, getattr(kind, "value", kind), "task.kind"),
            priority=priority.value,
            due=change.ts + _ns(sla if sla is not None else SLA_BY_PRIORITY_S[priority]),
            ts=change.ts,
            by="rules",
            source="rules",
            team=getattr(task, "team", None) or "",
            vendor=device.vendor,
            rule_id=spec.id,
            device_id=device.id,
            alarm_id=alarm_id,
            checklist=tuple(_bilingual(item) for item in getattr(task, "checklist", None) or ()),
        )
        found, changed = await self._store.raise_from_rule(new)
        return self._announce(found) if changed else None

    async def condition_cleared(self, rule_id: str, device: str, ts: int | None = None) -> TaskRecord | None:
        """Record that the condition behind the open task of (rule, device) cleared, which allows
        the task to be verified; None if no open task waits for it."""
        found = await self._store.condition_cleared(rule_id, device, now_ns() if ts is None else ts)
        return self._announce(found) if found else None

    async def create(
        self,
        *,
        title: Text,
        kind: TaskKind | str,
        by: str,
        source: str = "",
        priority: Priority | str = Priority.MEDIUM,
        description: str | Text = "",
        team: str = "",
        vendor: str | None = None,
        device: str | None = None,
        due: int | None = None,
        checklist: Sequence[str | Text] = (),
    ) -> TaskRecord:
        """A task made by hand (a resident's complaint, an engineer's finding). `due` is the time
        promised, UTC ns; without it the priority's SLA applies. The device's vendor answers for it
        unless `vendor` names another."""
        if not (title.zh.strip() or title.en.strip()):
            raise Invalid("title: a task needs a title", field="title")
        level = _choice(Priority, priority, "priority")
        if device is not None:
            try:
                vendor = vendor or self._site.device(device).vendor
            except KeyError:
                raise Invalid(f"device: no device {device!r} in this site", field="device") from None
        if vendor is not None and vendor not in {v.id for v in self._site.vendors}:
            raise Invalid(f"vendor: no vendor {vendor!r} in this site", field="vendor")
        ts = now_ns()
        new = NewTask(
            title=title,
            description=description if isinstance(description, Text) else Text.same(description),
            kind=_choice(TaskKind, kind, "kind"),
            priority=level.value,
            due=due if due is not None else ts + _ns(SLA_BY_PRIORITY_S[level]),
            ts=ts,
            by=by,
            source=source,
            team=team,
            vendor=vendor,
            device_id=device,
            checklist=tuple(_bilingual(item) for item in checklist),
        )
        return self._announce(await self._store.create(new))

    def assignees(self) -> list[Assignee]:
        """Who a task may be given to: the site's people, the teams they work in, its vendors."""
        people = [Assignee(p.id, "person", name_pair(p.name or p.id)) for p in self._site.people]
        teams = [Assignee(team, "team", Text.same(team)) for team in sorted({p.team for p in self._site.people})]
        vendors = [Assignee(v.id, "vendor", name_pair(v.name or v.id)) for v in self._site.vendors]
        return people + [team for team in teams if team.id] + vendors

    async def assign(self, task_id: int, assignee: str, by: str, source: str = "") -> TaskRecord:
        """Give the task to one of `assignees()`; anyone else is refused (UnknownAssignee)."""
        known = [a.id for a in self.assignees()]
        if assignee not in known:
            listed = ", ".join(known) or "none: declare people: or vendors: in the site file"
            raise UnknownAssignee(f"assignee: {assignee!r} is none of the site's people, teams or vendors ({listed})")
        return self._announce(await self._store.assign(task_id, assignee, by, source, now_ns()))

    async def set_status(
        self, task_id: int, status: TaskStatus | str, by: str, source: str = "", override: str | None = None
    ) -> TaskRecord:
        """Move the task on; `override` is a manager's reason to verify it with its checklist not
        all done (the caller checks the role)."""
        move = _choice(TaskStatus, status, "status")
        return self._announce(await self._store.set_status(task_id, move, by, source, now_ns(), override))

    async def tick(self, task_id: int, item: int, by: str, source: str = "", done: bool = True) -> TaskRecord:
        """Mark checklist item `item` (its position, from 0) done, or not done again."""
        return self._announce(await self._store.tick(task_id, item, done, by, source, now_ns()))

    async def add_note(self, task_id: int, note: str, by: str, source: str = "") -> TaskRecord:
        return self._announce(await self._store.add_note(task_id, note, by, source, now_ns()))

    async def attach(
        self, task_id: int, name: str, content_type: str, data: bytes, by: str, source: str = ""
    ) -> Attachment:
        """Keep a photo or file on the task (see rules.attachments), then announce the task."""

        async def record(new: NewFile) -> tuple[Attachment, TaskRecord]:
            return await self._store.add_attachment(task_id, new, source)

        added, task = await self.files.keep(name, content_type, data, by, record, lambda done: done[0].id)
        self._announce(task)
        return added

    def attachment_path(self, attachment: Attachment) -> Path:
        """Where the bytes of `attachment` are kept."""
        return self.files.path(attachment.id)

    async def attachments(self, task_id: int) -> list[Attachment]:
        return await self._store.attachments(task_id)

    async def get(self, task_id: int) -> TaskRecord:
        """The task with its full history; NotFound if there is none."""
        return await self._store.get(task_id, now_ns())

    async def vendor_sla(self, from_ns: int, to_ns: int) -> dict[str, VendorSla]:
        """Response times of every vendor with an `arrive_within`, for the call-outs raised in
        [from_ns, to_ns)."""
        limits = {v.id: _ns(v.arrive_within) for v in self._site.vendors if v.arrive_within is not None}
        return await self._store.vendor_sla(limits, from_ns, to_ns, now_ns())

    def _announce(self, task: TaskRecord) -> TaskRecord:
        self._bus.publish_event(EventKind.TASK, task.as_json())
        return task

    def _texts(self, change: Change) -> tuple[Text, Text]:
        """The rule's title and message filled in for the device, as the alarm shows them."""
        texts = rule_texts(change.rule.spec, self._site, change.device, change.values)
        return Text(texts.title_zh, texts.title_en), Text(texts.message_zh, texts.message_en)

    async def list(
        self,
        *,
        status: Iterable[TaskStatus | str] = (),
        kind: TaskKind | str | None = None,
        team: str | None = None,
        vendor: str | None = None,
        overdue: bool | None = None,
        limit: int = 500,
    ) -> list[TaskRecord]:
        """Tasks matching every filter given, the soonest due first. (Defined last: inside the class
        body its name hides the builtin `list` from later annotations.)"""
        return await self._store.list(
            now_ns(),
            status=[_choice(TaskStatus, s, "status") for s in status],
            kind=None if kind is None else _choice(TaskKind, kind, "kind"),
            team=team,
            vendor=vendor,
            overdue=overdue,
            limit=limit,
        )


def _choice(enum: type[E], value: str, field: str) -> E:
    try:
        return enum(value)
    except ValueError:
        known = ", ".join(m.value for m in enum)
        raise Invalid(f"{field}: {value!r} is not one of {known}", field=field) from None


CJK = re.compile(r"[\u3400-\u9fff]")


def name_pair(text: str) -> Text:
    """A text written "中文 / English", as the site file writes names, split into its two
    languages; any other text is the same in both."""
    parts = [p.strip() for p in text.split(" / ")]
    if len(parts) == 2 and all(parts) and bool(CJK.search(parts[0])) != bool(CJK.search(parts[1])):
        zh, en = parts if CJK.search(parts[0]) else parts[::-1]
        return Text(zh, en)
    return Text.same(text)


def _bilingual(item: object) -> Text:
    """A checklist line: a text with zh and en (a rule file's `{zh, en}`), or one string, the same in
    both languages ("中文 / English" is split as in the site file)."""
    if isinstance(item, Text):
        return item
    zh, en = getattr(item, "zh", None), getattr(item, "en", None)
    if isinstance(zh, str) and isinstance(en, str):
        return Text(zh, en)
    return name_pair(str(item))


def _ns(seconds: float) -> int:
    return round(seconds * 1e9)
