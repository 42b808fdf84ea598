"""The ops store's tables: one declarative `Base` and the rows of alarms, their history, devices
out of service, dead letters, the audit log, tasks, emergency plan instances, users, equipment
records, the schedules' marks and the estates that use the database.

They live apart from the stores that write them so that the read side (facility.store.reads,
reports, benchmarks) can query the tables without importing a writer, and so that the schema of
these records is read in one place: importing this module declares the whole schema, which
`OpsStore` checks against the database (a row class kept beside its store would be missing from
the check whenever that store's module happened not to be imported).

Every row but a user's carries the site id of its estate (facility.store.site_scope): one database
may serve many estates, and a device id is unique within its estate only, so the keys of devices out
of service, equipment records and schedule marks begin with the site. Users belong to the
deployment, limited to some of its estates by `sites`.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Float, ForeignKey, Index, String, Text, false, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from facility.model import AlarmState
from facility.records import HistoryEntry
from facility.store.files import FileColumns
from facility.store.site_scope import SiteColumn


class Base(DeclarativeBase):
    """The metadata of every ops store table: what the schema check compares with the database."""


class HistoryColumns:
    """The columns of a history entry, after its id and the record it belongs to: alarms and tasks
    keep their histories alike, so that the desk, the reports and the device history read one shape."""

    ts: Mapped[int] = mapped_column(BigInteger)
    action: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(200), default="")  # client address, "rules", ...
    detail: Mapped[str] = mapped_column(Text, default="")

    def entry(self) -> HistoryEntry:
        """The entry as a record's `history` lists it."""
        return HistoryEntry(self.ts, self.action, self.actor, self.source, self.detail)


class AlarmRow(SiteColumn, Base):
    """An alarm: its ISA-18.2 state (active, acknowledged), its flags and texts, open until nothing keeps it open."""

    __tablename__ = "alarms"

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[str] = mapped_column(String(200))
    device_id: Mapped[str] = mapped_column(String(200))
    priority: Mapped[str] = mapped_column(String(20))
    title_zh: Mapped[str] = mapped_column(Text, default="")
    title_en: Mapped[str] = mapped_column(Text, default="")
    message_zh: Mapped[str] = mapped_column(Text, default="")
    message_en: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool]
    acknowledged: Mapped[bool]
    is_open: Mapped[bool]
    raised_at: Mapped[int] = mapped_column(BigInteger)  # UTC ns
    changed_at: Mapped[int] = mapped_column(BigInteger)
    acked_at: Mapped[int | None] = mapped_column(BigInteger)
    acked_by: Mapped[str | None] = mapped_column(String(200))
    cleared_at: Mapped[int | None] = mapped_column(BigInteger)
    activated_at: Mapped[int] = mapped_column(BigInteger)  # when it last went active
    shelved: Mapped[bool] = mapped_column(default=False)
    shelved_until: Mapped[int | None] = mapped_column(BigInteger)
    shelved_by: Mapped[str | None] = mapped_column(String(200))
    shelve_reason: Mapped[str | None] = mapped_column(Text)
    suppressed: Mapped[bool] = mapped_column(default=False)
    out_of_service: Mapped[bool] = mapped_column(default=False)
    chattering: Mapped[bool] = mapped_column(default=False)
    escalated: Mapped[bool] = mapped_column(default=False)
    history: Mapped[list[AlarmHistoryRow]] = relationship(order_by="AlarmHistoryRow.id", cascade="all, delete-orphan")

    __table_args__ = (
        # The desk's lists and the reports ask one estate's alarms: the site leads (migration 0004).
        Index("alarms_open_by_change", "site", "is_open", "changed_at"),
        Index("alarms_by_raised", "site", "raised_at"),
        Index("alarms_by_rule_and_device", "rule_id", "device_id"),  # chattering counts every occurrence
        Index(
            "one_open_alarm_per_rule_and_device",
            "site",
            "rule_id",
            "device_id",
            unique=True,
            sqlite_where=text("is_open"),
            postgresql_where=text("is_open"),
        ),
    )

    @property
    def state(self) -> AlarmState:
        return AlarmState.of(
            self.active,
            self.acknowledged,
            shelved=self.shelved,
            suppressed=self.suppressed,
            out_of_service=self.out_of_service,
        )

    def settle(self) -> None:
        """Close the alarm once nothing keeps it open any more."""
        self.is_open = self.active or not self.acknowledged or self.shelved


class AlarmHistoryRow(HistoryColumns, SiteColumn, Base):
    """One entry of an alarm's history: what happened (facility.vocabulary.AlarmAction), by whom, when, from where."""

    __tablename__ = "alarm_history"

    id: Mapped[int] = mapped_column(primary_key=True)
    alarm_id: Mapped[int] = mapped_column(ForeignKey("alarms.id"), index=True)

    # Reports and the handover read a period's actions (acknowledged, raised...) across all alarms.
    __table_args__ = (Index("alarm_history_by_action_and_time", "site", "action", "ts"),)


class OutOfServiceRow(SiteColumn, Base):
    """A device under maintenance: its alarms are still recorded, flagged out of service."""

    __tablename__ = "out_of_service"

    site: Mapped[str] = mapped_column(String(200), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    since: Mapped[int] = mapped_column(BigInteger)
    set_by: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)


class DeadLetterRow(SiteColumn, Base):
    """Input the system could not use, kept so that nothing is lost silently."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(primary_key=True)
    ts: Mapped[int] = mapped_column(BigInteger, index=True)
    source: Mapped[str] = mapped_column(String(40))  # mqtt, modbus, telemetry
    key: Mapped[str] = mapped_column(String(400))  # topic, device/point, ...
    reason: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)


class AuditRow(SiteColumn, Base):
    """One change someone asked for (a Modbus write, ...): who, when, from where, and how it ended.

    `device` and `site_wide` say whose building it concerns, for users limited to buildings: the
    device of the record changed, or a site-wide record (a task of no device) that every building
    sees; an entry with neither (a rule reload, an id that names nothing) is for the whole site's
    managers only."""

    __tablename__ = "audit"

    id: Mapped[int] = mapped_column(primary_key=True)
    ts: Mapped[int] = mapped_column(BigInteger, index=True)  # UTC ns of the request
    actor: Mapped[str] = mapped_column(String(200))  # user name
    source: Mapped[str] = mapped_column(String(200))  # client address
    action: Mapped[str] = mapped_column(String(40))  # write, ...
    target: Mapped[str] = mapped_column(String(400))  # device/point, ...
    detail: Mapped[str] = mapped_column(Text)  # JSON object: value asked for, confirmed value or error
    outcome: Mapped[str] = mapped_column(String(20))  # pending, ok, refused, failed
    device: Mapped[str | None] = mapped_column(String(200))
    site_wide: Mapped[bool] = mapped_column(default=False, server_default=false())


class TaskRow(SiteColumn, Base):
    """A task (work order): status, SLA due time, who works it, and the rule and device that raised it, if any."""

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
            "site",
            "rule_id",
            "device_id",
            unique=True,
            sqlite_where=text("is_open"),
            postgresql_where=text("is_open"),
        ),
    )


class TaskHistoryRow(HistoryColumns, SiteColumn, Base):
    """One entry of a task's history: a status move, an assignment, a note, a checklist tick."""

    __tablename__ = "task_history"

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), index=True)


class ChecklistItemRow(SiteColumn, Base):
    """One line of a task's checklist, and who ticked it when."""

    __tablename__ = "task_checklist"

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), index=True)
    position: Mapped[int]
    text_zh: Mapped[str] = mapped_column(Text)
    text_en: Mapped[str] = mapped_column(Text)
    done: Mapped[bool] = mapped_column(default=False)
    done_by: Mapped[str | None] = mapped_column(String(200))
    done_at: Mapped[int | None] = mapped_column(BigInteger)


class AttachmentRow(FileColumns, SiteColumn, Base):
    """A photo or file on a task; its bytes are a file of the data folder named by this row's id."""

    __tablename__ = "task_attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), index=True)


class PlanInstanceRow(SiteColumn, Base):
    """An emergency plan opened for one alarm, with the plan's texts copied as they were then."""

    __tablename__ = "plan_instances"

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[str] = mapped_column(String(200))
    alarm_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    device_id: Mapped[str] = mapped_column(String(200))
    title_zh: Mapped[str] = mapped_column(Text)
    title_en: Mapped[str] = mapped_column(Text)
    is_open: Mapped[bool]
    opened_at: Mapped[int] = mapped_column(BigInteger)  # UTC ns; step limits count from here
    closed_at: Mapped[int | None] = mapped_column(BigInteger)
    closed_by: Mapped[str | None] = mapped_column(String(200))
    closed_from: Mapped[str | None] = mapped_column(String(200))  # client address, or "plan" when all steps are done
    steps: Mapped[list[PlanStepRow]] = relationship(order_by="PlanStepRow.position", cascade="all, delete-orphan")
    attachments: Mapped[list[StepAttachmentRow]] = relationship(order_by="StepAttachmentRow.id")

    __table_args__ = (Index("open_plan_instances", "is_open"),)


class PlanStepRow(SiteColumn, Base):
    """One step of a plan instance: its time limit, and who did it when and from where."""

    __tablename__ = "plan_steps"

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("plan_instances.id"), index=True)
    position: Mapped[int]
    step_id: Mapped[str] = mapped_column(String(200))
    text_zh: Mapped[str] = mapped_column(Text)
    text_en: Mapped[str] = mapped_column(Text)
    due_at: Mapped[int] = mapped_column(BigInteger)  # opened_at + the step's limit
    done_at: Mapped[int | None] = mapped_column(BigInteger)
    done_by: Mapped[str | None] = mapped_column(String(200))
    done_from: Mapped[str | None] = mapped_column(String(200))
    note: Mapped[str] = mapped_column(Text, default="")
    overdue_at: Mapped[int | None] = mapped_column(BigInteger)  # when it was reported overdue, once


class StepAttachmentRow(FileColumns, SiteColumn, Base):
    """A photo or file added while working a step; its bytes are a file of the data folder named by
    this row's id (migration 0003)."""

    __tablename__ = "plan_step_attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("plan_instances.id"), index=True)
    step_id: Mapped[str] = mapped_column(String(200))


class UserRow(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    buildings: Mapped[str] = mapped_column(Text, server_default="")  # comma-separated; empty: the whole site
    sites: Mapped[str] = mapped_column(Text, server_default="")  # comma-separated site ids; empty: every estate


class EstateRow(Base):
    """An estate that has used this database: registered by its process's ops store at each start,
    so that the company view lists every estate, whether or not it has records yet (migration 0004)."""

    __tablename__ = "estates"

    site: Mapped[str] = mapped_column(String(200), primary_key=True)
    name: Mapped[str] = mapped_column(Text, server_default="")  # the site file's `site.name`
    desk_url: Mapped[str] = mapped_column(Text, server_default="")  # the site file's `site.desk_url`
    started_at: Mapped[int] = mapped_column(BigInteger)  # UTC ns of its process's last start


class EquipmentRow(SiteColumn, Base):
    __tablename__ = "equipment_records"

    site: Mapped[str] = mapped_column(String(200), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    model: Mapped[str] = mapped_column(String(200), server_default="")
    manufacturer: Mapped[str] = mapped_column(String(200), server_default="")
    serial_number: Mapped[str] = mapped_column(String(200), server_default="")
    install_date: Mapped[str | None] = mapped_column(String(10))
    warranty_end: Mapped[str | None] = mapped_column(String(10))
    vendor: Mapped[str] = mapped_column(String(200), server_default="")
    contract: Mapped[str] = mapped_column(String(200), server_default="")
    contract_end: Mapped[str | None] = mapped_column(String(10))
    location: Mapped[str] = mapped_column(String(500), server_default="")
    notes: Mapped[str] = mapped_column(Text, server_default="")
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[int] = mapped_column(BigInteger)


class ScheduleMarkRow(SiteColumn, Base):
    __tablename__ = "schedule_marks"

    site: Mapped[str] = mapped_column(String(200), primary_key=True)
    schedule_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    occurrence: Mapped[int | None] = mapped_column(BigInteger)  # UTC ns of the last calendar occurrence handled
    meter: Mapped[float | None] = mapped_column(Float)  # counter value the next `every` counts from
    changed_at: Mapped[int] = mapped_column(BigInteger)  # UTC ns
