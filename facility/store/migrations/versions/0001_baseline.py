"""The ops store's schema as the first release with migrations made it: alarms and their history,
devices out of service, dead letters, the audit log, tasks, emergency plans, schedule marks and users.

Written out table by table rather than taken from the models, which change with every later
migration: this one must make the same schema for ever. A database of the release before (no
alembic_version) is not made by this but adopted (`facility.store.migrations`): the tables it lacks
are made from `schema()`, the columns it lacks added, and it is stamped with this revision.

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None

NAME = sa.String(200)  # a user, a rule, a device, a client address...


def schema() -> sa.MetaData:
    """The baseline's tables, with their indexes, in the order they were first written."""
    metadata = sa.MetaData()
    for tables in (_alarm_tables, _record_tables, _task_tables, _plan_tables, _user_and_schedule_tables):
        tables(metadata)
    return metadata


def _alarm_tables(metadata: sa.MetaData) -> None:
    """Alarms, their history and the devices out of service."""
    sa.Table(
        "alarms",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("rule_id", NAME, nullable=False),
        sa.Column("device_id", NAME, nullable=False),
        sa.Column("priority", sa.String(20), nullable=False),
        sa.Column("title_zh", sa.Text, nullable=False),
        sa.Column("title_en", sa.Text, nullable=False),
        sa.Column("message_zh", sa.Text, nullable=False),
        sa.Column("message_en", sa.Text, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("acknowledged", sa.Boolean, nullable=False),
        sa.Column("is_open", sa.Boolean, nullable=False),
        sa.Column("raised_at", sa.BigInteger, nullable=False),
        sa.Column("changed_at", sa.BigInteger, nullable=False),
        sa.Column("acked_at", sa.BigInteger),
        sa.Column("acked_by", NAME),
        sa.Column("cleared_at", sa.BigInteger),
        sa.Column("activated_at", sa.BigInteger, nullable=False),
        sa.Column("shelved", sa.Boolean, nullable=False),
        sa.Column("shelved_until", sa.BigInteger),
        sa.Column("shelved_by", NAME),
        sa.Column("shelve_reason", sa.Text),
        sa.Column("suppressed", sa.Boolean, nullable=False),
        sa.Column("out_of_service", sa.Boolean, nullable=False),
        sa.Column("chattering", sa.Boolean, nullable=False),
        sa.Column("escalated", sa.Boolean, nullable=False),
        sa.Index("alarms_open_by_change", "is_open", "changed_at"),
        sa.Index("alarms_by_raised", "raised_at"),
        sa.Index("alarms_by_rule_and_device", "rule_id", "device_id"),
        _one_open("one_open_alarm_per_rule_and_device"),
    )
    _history(metadata, "alarm", sa.Index("alarm_history_by_action_and_time", "action", "ts"))
    sa.Table(
        "out_of_service",
        metadata,
        sa.Column("device_id", NAME, primary_key=True),
        sa.Column("since", sa.BigInteger, nullable=False),
        sa.Column("set_by", NAME, nullable=False),
        sa.Column("source", NAME, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
    )


def _record_tables(metadata: sa.MetaData) -> None:
    """Dead letters and the audit log."""
    sa.Table(
        "dead_letters",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("source", sa.String(40), nullable=False),
        sa.Column("key", sa.String(400), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Index("ix_dead_letters_ts", "ts"),
    )
    sa.Table(
        "audit",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("actor", NAME, nullable=False),
        sa.Column("source", NAME, nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("target", sa.String(400), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("device", NAME),
        sa.Column("site_wide", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Index("ix_audit_ts", "ts"),
    )


def _task_tables(metadata: sa.MetaData) -> None:
    """Tasks, their history and checklists."""
    sa.Table(
        "tasks",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("title_zh", sa.Text, nullable=False),
        sa.Column("title_en", sa.Text, nullable=False),
        sa.Column("description_zh", sa.Text, nullable=False),
        sa.Column("description_en", sa.Text, nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("priority", sa.String(20), nullable=False),
        sa.Column("team", NAME, nullable=False),
        sa.Column("vendor", NAME),
        sa.Column("assignee", NAME),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("due", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("changed_at", sa.BigInteger, nullable=False),
        sa.Column("arrived_at", sa.BigInteger),
        sa.Column("resolved_at", sa.BigInteger),
        sa.Column("closed_at", sa.BigInteger),
        sa.Column("created_by", NAME, nullable=False),
        sa.Column("rule_id", NAME),
        sa.Column("device_id", NAME),
        sa.Column("alarm_id", sa.Integer, sa.ForeignKey("alarms.id")),
        sa.Column("recurrences", sa.Integer, nullable=False),
        sa.Column("condition_active", sa.Boolean, nullable=False),
        sa.Column("is_open", sa.Boolean, nullable=False),
        sa.Index("ix_tasks_vendor", "vendor"),
        sa.Index("ix_tasks_status", "status"),
        sa.Index("ix_tasks_created_at", "created_at"),
        _one_open("one_open_task_per_rule_and_device"),
    )
    _history(metadata, "task")
    sa.Table(
        "task_checklist",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("task_id", sa.Integer, sa.ForeignKey("tasks.id"), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("text_zh", sa.Text, nullable=False),
        sa.Column("text_en", sa.Text, nullable=False),
        sa.Column("done", sa.Boolean, nullable=False),
        sa.Column("done_by", NAME),
        sa.Column("done_at", sa.BigInteger),
        sa.Index("ix_task_checklist_task_id", "task_id"),
    )


def _plan_tables(metadata: sa.MetaData) -> None:
    """Emergency plan instances and their steps."""
    sa.Table(
        "plan_instances",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("plan_id", NAME, nullable=False),
        sa.Column("alarm_id", sa.BigInteger, nullable=False, unique=True),
        sa.Column("device_id", NAME, nullable=False),
        sa.Column("title_zh", sa.Text, nullable=False),
        sa.Column("title_en", sa.Text, nullable=False),
        sa.Column("is_open", sa.Boolean, nullable=False),
        sa.Column("opened_at", sa.BigInteger, nullable=False),
        sa.Column("closed_at", sa.BigInteger),
        sa.Column("closed_by", NAME),
        sa.Column("closed_from", NAME),
        sa.Index("open_plan_instances", "is_open"),
    )
    sa.Table(
        "plan_steps",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("instance_id", sa.Integer, sa.ForeignKey("plan_instances.id"), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("step_id", NAME, nullable=False),
        sa.Column("text_zh", sa.Text, nullable=False),
        sa.Column("text_en", sa.Text, nullable=False),
        sa.Column("due_at", sa.BigInteger, nullable=False),
        sa.Column("done_at", sa.BigInteger),
        sa.Column("done_by", NAME),
        sa.Column("done_from", NAME),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("overdue_at", sa.BigInteger),
        sa.Index("ix_plan_steps_instance_id", "instance_id"),
    )


def _user_and_schedule_tables(metadata: sa.MetaData) -> None:
    """Users and the schedules' marks."""
    sa.Table(
        "users",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("token_digest", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("buildings", sa.Text, nullable=False, server_default=""),
    )
    sa.Table(
        "schedule_marks",
        metadata,
        sa.Column("schedule_id", NAME, primary_key=True),
        sa.Column("device_id", NAME, primary_key=True),
        sa.Column("occurrence", sa.BigInteger),
        sa.Column("meter", sa.Float),
        sa.Column("changed_at", sa.BigInteger, nullable=False),
    )


def _one_open(name: str) -> sa.Index:
    """At most one open row per rule and device (an alarm, a task): a partial unique index."""
    where = sa.text("is_open")
    return sa.Index(name, "rule_id", "device_id", unique=True, sqlite_where=where, postgresql_where=where)


def _history(metadata: sa.MetaData, record: str, *indexes: sa.Index) -> sa.Table:
    """`<record>_history`: who did what to an alarm or a task, when and from where."""
    return sa.Table(
        f"{record}_history",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(f"{record}_id", sa.Integer, sa.ForeignKey(f"{record}s.id"), nullable=False),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("actor", NAME, nullable=False),
        sa.Column("source", NAME, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Index(f"ix_{record}_history_{record}_id", f"{record}_id"),
        *indexes,
    )


def upgrade() -> None:
    schema().create_all(op.get_bind())


def downgrade() -> None:
    raise NotImplementedError("the baseline is not undone: it would drop every alarm; restore a backup instead")
