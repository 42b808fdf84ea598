"""Every record carries its estate: a `site` column on every table but `users`, and `users.sites`.

One database may now serve many estates (docs/scale-out.md). A database made before this revision
belonged to one estate, the one upgrading it (`config.attributes["site"]`, the site id of the site
file the upgrade was started with), so every row it holds gets that site id.

A device id is unique within its estate only, so the tables keyed by one (devices out of service,
equipment records, schedule marks) are made again with the site first in their key, and the "one
open alarm (task) per rule and device" indexes are per site. The indexes the desk's lists and the
reports read by begin with the site. `users.sites` limits a user to some
estates (comma-separated site ids; empty: every estate). `estates` lists the estates that use the
database, each registered by its process at start, for the company view.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import context, op

revision = "0004"
down_revision: str | None = "0003"
branch_labels = None
depends_on = None

NAME = sa.String(200)
# Tables that gain the column in place: their key is an id of their own.
IN_PLACE = (
    "alarms",
    "alarm_history",
    "dead_letters",
    "audit",
    "tasks",
    "task_history",
    "task_checklist",
    "task_attachments",
    "plan_instances",
    "plan_steps",
    "plan_step_attachments",
)
ONE_OPEN = (("one_open_alarm_per_rule_and_device", "alarms"), ("one_open_task_per_rule_and_device", "tasks"))
# The indexes the desk's lists and the reports read one estate by: the site leads them now, so that
# an estate's pages cost what they cost when it had the database alone (bench/estates.py).
BY_SITE = (
    ("alarms_open_by_change", "alarms", ("site", "is_open", "changed_at")),
    ("alarms_by_raised", "alarms", ("site", "raised_at")),
    ("alarm_history_by_action_and_time", "alarm_history", ("site", "action", "ts")),
)


def _rekeyed() -> dict[str, list[sa.Column[Any]]]:
    """The tables keyed by a device id, as they are after this revision: the site first in the key."""
    col = sa.Column
    return {
        "out_of_service": [
            col("site", NAME, primary_key=True),
            col("device_id", NAME, primary_key=True),
            col("since", sa.BigInteger, nullable=False),
            col("set_by", NAME, nullable=False),
            col("source", NAME, nullable=False),
            col("reason", sa.Text, nullable=False),
        ],
        "equipment_records": [
            col("site", NAME, primary_key=True),
            col("device_id", NAME, primary_key=True),
            *(
                col(name, sa.String(length), nullable=False, server_default="")
                for name, length in (("model", 200), ("manufacturer", 200), ("serial_number", 200))
            ),
            col("install_date", sa.String(10)),
            col("warranty_end", sa.String(10)),
            col("vendor", NAME, nullable=False, server_default=""),
            col("contract", NAME, nullable=False, server_default=""),
            col("contract_end", sa.String(10)),
            col("location", sa.String(500), nullable=False, server_default=""),
            col("notes", sa.Text, nullable=False, server_default=""),
            col("updated_by", NAME, nullable=False),
            col("updated_at", sa.BigInteger, nullable=False),
        ],
        "schedule_marks": [
            col("site", NAME, primary_key=True),
            col("schedule_id", NAME, primary_key=True),
            col("device_id", NAME, primary_key=True),
            col("occurrence", sa.BigInteger),
            col("meter", sa.Float),
            col("changed_at", sa.BigInteger, nullable=False),
        ],
    }


def _site() -> str:
    site = context.config.attributes.get("site")
    if not isinstance(site, str) or not site:
        raise RuntimeError("revision 0004 needs the site id of the estate whose database this is")
    return site


def upgrade() -> None:
    site = _site()
    for table in IN_PLACE:
        op.add_column(table, sa.Column("site", NAME, nullable=False, server_default=""))
        op.execute(sa.text(f"UPDATE {table} SET site = :site").bindparams(site=site))
    for index, table in ONE_OPEN:
        found = sa.inspect(op.get_bind())
        if index in {i["name"] for i in found.get_indexes(table)}:
            op.drop_index(index, table)
        if {"rule_id", "device_id", "is_open"} <= {c["name"] for c in found.get_columns(table)}:
            where = sa.text("is_open")  # (a table made by hand without them is refused by name afterwards)
            op.create_index(
                index, table, ["site", "rule_id", "device_id"], unique=True, sqlite_where=where, postgresql_where=where
            )
    for index, table, keys in BY_SITE:
        if index in {i["name"] for i in sa.inspect(op.get_bind()).get_indexes(table)}:
            op.drop_index(index, table)
        if set(keys) <= {c["name"] for c in sa.inspect(op.get_bind()).get_columns(table)}:
            op.create_index(index, table, list(keys))
    for table, columns in _rekeyed().items():
        kept = ", ".join(c.name for c in columns if c.name != "site")
        op.create_table(f"{table}_by_site", *columns)
        op.execute(
            sa.text(f"INSERT INTO {table}_by_site (site, {kept}) SELECT :site, {kept} FROM {table}").bindparams(
                site=site
            )
        )
        op.drop_table(table)
        op.rename_table(f"{table}_by_site", table)
    op.add_column("users", sa.Column("sites", sa.Text, nullable=False, server_default=""))
    op.create_table(
        "estates",
        sa.Column("site", NAME, primary_key=True),
        sa.Column("name", sa.Text, nullable=False, server_default=""),
        sa.Column("desk_url", sa.Text, nullable=False, server_default=""),
        sa.Column("started_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    raise NotImplementedError("records of many estates cannot go back to a database of one")
