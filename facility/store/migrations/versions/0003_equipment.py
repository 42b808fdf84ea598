"""Equipment records (设备台账) and files on emergency-plan steps.

`equipment_records`: one row per device the engineers have described, keyed by the device id of the
site file (a device the file no longer has keeps its row, so that its archive outlives it): model,
manufacturer, serial number, install date and warranty end (ISO dates, as the nameplate and the
contract give them, with no time of day), maintenance vendor and contract, where exactly it stands,
and notes; who changed it last and when. Text the engineer did not fill in is an empty string.

`plan_step_attachments`: a photo or file added while working a step of an emergency plan, recorded
as a task's attachment is; the bytes are a file of the data folder named by the row's id.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels = None
depends_on = None


def _text(name: str, length: int) -> sa.Column[str]:
    return sa.Column(name, sa.String(length), nullable=False, server_default="")


def upgrade() -> None:
    op.create_table(
        "equipment_records",
        sa.Column("device_id", sa.String(200), primary_key=True),
        _text("model", 200),
        _text("manufacturer", 200),
        _text("serial_number", 200),
        sa.Column("install_date", sa.String(10)),  # YYYY-MM-DD, or none
        sa.Column("warranty_end", sa.String(10)),
        _text("vendor", 200),  # a vendor id of the site file, or a company the file does not name
        _text("contract", 200),  # the maintenance contract's number or name
        sa.Column("contract_end", sa.String(10)),
        _text("location", 500),  # where exactly, beyond the site file's building, floor and room
        sa.Column("notes", sa.Text, nullable=False, server_default=""),
        sa.Column("updated_by", sa.String(200), nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "plan_step_attachments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("instance_id", sa.Integer, sa.ForeignKey("plan_instances.id"), nullable=False),
        sa.Column("step_id", sa.String(200), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("added_by", sa.String(200), nullable=False),
        sa.Column("added_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_plan_step_attachments_instance_id", "plan_step_attachments", ["instance_id"])


def downgrade() -> None:
    op.drop_index("ix_plan_step_attachments_instance_id", "plan_step_attachments")
    op.drop_table("plan_step_attachments")
    op.drop_table("equipment_records")
