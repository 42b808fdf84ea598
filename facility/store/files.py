"""What the ops store records of a photo or file added to a task or a plan step: one set of columns
and one record for both, so that the two cannot drift (the bytes themselves are files of the data
folder, named by the row's id; rules.attachments keeps them)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column


class FileColumns:
    """The columns of an attachment's row, after its id and what it is attached to."""

    name: Mapped[str] = mapped_column(String(200))  # as the phone named it
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    added_by: Mapped[str] = mapped_column(String(200))
    added_at: Mapped[int] = mapped_column(BigInteger)


def file_fields(row: Any) -> dict[str, Any]:
    """The FileRecord fields of a row with FileColumns (and an id)."""
    return {
        "id": row.id,
        "name": row.name,
        "content_type": row.content_type,
        "size": row.size,
        "sha256": row.sha256,
        "added_by": row.added_by,
        "added_at": row.added_at,
    }
