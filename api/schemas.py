"""What the API answers, as the OpenAPI document describes it to clients.

The stores give plain dicts; these models are checked against them on every answer. They forbid
unknown keys, so that a field added to a store without its model here fails loudly (a 500 the
schema tests find) instead of reaching clients undocumented.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from facility.model import AlarmState, Priority
from facility.records import TaskKind, TaskStatus

Value = bool | int | float | str | None


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Text(Answer):
    zh: str
    en: str


class Error(Answer):
    detail: str = Field(description="what went wrong, for a person to read")


class FieldError(Answer):
    loc: list[str | int] = Field(description="where: body, query or path, then the field")
    msg: str
    type: str
    input: object = None
    ctx: dict[str, object] | None = None
    url: str | None = None


class Invalid(Answer):
    detail: list[FieldError]


class Placed(Answer):
    """Where a record's device is (empty strings for site-wide records)."""

    device_name: str
    building: str
    system: str


class HistoryEntry(Answer):
    ts: int
    action: str
    actor: str
    source: str
    detail: str


class AlarmHistoryEntry(HistoryEntry):
    """`detail` is kept as the store wrote it (for the audit); `text` says it in both languages."""

    text: Text


class Alarm(Placed):
    """An alarm as the ops store records it. On the event stream, an alarm raised while the ops
    store is down comes first as a provisional `alarm` event with `recorded: false` and no `id`
    (rule, device, priority, state, title, message, times and flags only); the recorded alarm's
    event, which has no `recorded` key, follows and replaces it (match on rule and device)."""

    id: int
    rule: str
    device: str
    priority: Priority
    state: AlarmState
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


class AlarmDetail(Alarm):
    history: list[AlarmHistoryEntry]
    plan: int | None = Field(description="the emergency plan instance it opened")


class AlarmPage(Answer):
    items: list[Alarm]
    total: int = Field(description="alarms matching the filters, on every page")
    limit: int
    offset: int


class ChecklistItem(Answer):
    n: int
    text: Text
    done: bool
    by: str | None
    at: int | None


class TaskNote(Answer):
    ts: int
    by: str
    text: str


class TaskOrigin(Answer):
    kind: Literal["rule", "manual"]
    rule: str | None = None
    device: str | None = None
    by: str | None = None


class Task(Placed):
    id: int
    title: Text
    description: Text
    kind: TaskKind
    priority: Priority
    team: str
    vendor: str | None
    assignee: str | None
    status: TaskStatus
    due: int
    overdue: bool
    source: TaskOrigin
    device: str | None
    alarm_id: int | None
    recurrences: int
    condition_active: bool
    created_at: int
    changed_at: int
    arrived_at: int | None
    resolved_at: int | None
    closed_at: int | None
    checklist: list[ChecklistItem]
    notes: list[TaskNote]


class TaskDetail(Task):
    history: list[HistoryEntry]


class TaskPage(Answer):
    items: list[Task]
    total: int
    limit: int
    offset: int


class PlanStep(Answer):
    id: str
    text: Text
    due_at: int
    done_at: int | None
    done_by: str | None
    done_from: str | None
    note: str | None
    overdue: bool
    late: bool


class PlanInstance(Placed):
    id: int
    plan: str
    alarm: int
    device: str
    title: Text
    state: Literal["open", "closed"]
    opened_at: int
    closed_at: int | None
    closed_by: str | None
    closed_from: str | None
    steps: list[PlanStep]


class Location(Answer):
    building: str
    floor: str
    room: str


class Maintenance(Answer):
    since: int
    by: str
    source: str
    reason: str


class LivePoint(Answer):
    unit: str
    label: dict[str, str]
    value_labels: dict[str, Text] = Field(
        default_factory=dict,
        description="the words of the values the point takes, by value (a bool as `true`/`false`): the"
        " profile's `values:`; a value not listed here is shown as it is",
    )
    value: Value
    quality: Literal["good", "stale", "no_comm", "bad", "no_data"]
    age_s: float | None


class Device(Answer):
    id: str
    name: str
    type: str
    system: str
    location: Location
    vendor: str | None
    online: bool | None = Field(description="null: never heard from")
    last_seen: int | None
    out_of_service: Maintenance | None
    points: dict[str, LivePoint]


class ServiceChange(Answer):
    device: str
    out_of_service: bool
    alarms: list[Alarm]


class Sample(Answer):
    ts: int
    mean: Value
    min: Value
    max: Value
    count: int


class History(Answer):
    device: str
    point: str
    unit: str
    since: int
    until: int
    bucket_s: float | None = Field(description="null: raw readings")
    samples: list[Sample]


class VendorInfo(Answer):
    id: str
    name: Text = Field(description='the site file\'s name, split where it gives "中文 / English"')


class SiteInfo(Answer):
    id: str
    name: str = Field(description="as the site file writes it")
    title: Text = Field(description="the name in each language")
    timezone: str
    buildings: list[str]
    systems: list[str]
    vendors: list[VendorInfo]


class Me(Answer):
    name: str
    role: Literal["viewer", "duty", "engineer", "manager", "admin"]
    buildings: list[str] | None = Field(description="null: every building")
    estates: list[str] | None = Field(description="the estates (site ids) the user may reach; null: every estate")


class RuleInfo(Answer):
    id: str
    source: str = Field(description="file:line where it is defined")
    title: Text
    priority: Priority
    outcome: Literal["alarm", "task", "both"]
    plan: str | None
    when: str
    devices: list[str]


class Flood(Answer):
    active: bool
    count: int | None = None
    since: int | None = None


ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": Error, "description": "no token, or one that is unknown or revoked"},
    403: {"model": Error, "description": "the role is too low (the answer names the role needed)"},
    404: {"model": Error, "description": "no such record, or one in a building the user is not limited to"},
    409: {"model": Error, "description": "the record's state does not allow the action"},
    422: {"model": Invalid, "description": "a field is wrong, or is one the server sets"},
    429: {"model": Error, "description": "too many changes; `Retry-After` says when to try again"},
    503: {"model": Error, "description": "the ops store does not answer; `Retry-After` says when to try again"},
}


class Estate(Answer):
    """One estate in the company view: facility.store.reads.estates.EstateFigures."""

    site: str
    name: str = Field(description="the estate's name, as its site file says it")
    desk_url: str = Field(description="where its duty desk is reached (the site file's site.desk_url); empty: not said")
    here: bool = Field(description="the estate this process serves (its desk is this one)")
    open_alarms: int
    open_emergencies: int
    unacknowledged: int
    overdue_tasks: int
    offline_devices: int
    out_of_service: int
    month_alarms: int = Field(description="activations since the start of this local month")
    month_mtta_ns: int | None = Field(description="mean time to acknowledge them, ns; none acknowledged: null")
    month_on_time: float | None = Field(description="share of the month's team tasks finished by their due time")


class EstateDesk(Answer):
    """An estate the user may reach and where its desk is: the desk's estate switch."""

    site: str
    name: str
    desk_url: str = Field(description="its desk's address (the site file's site.desk_url); empty: not said")
    here: bool


class Estates(Answer):
    month: str = Field(description="YYYY-MM, the local month of the month_ figures")
    items: list[Estate]
