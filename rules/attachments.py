"""Photos and files that duty staff add from a phone, to a task or to a step of an emergency plan.

One keeper for both, so that a file is judged and kept the same way wherever it is added: its size
is held to the site's `api.max_attachment_kb`, its declared type must be one taken *and* match its
first bytes (a script renamed .jpg is not served to a phone as a photo), and its bytes are on disk,
synced, before the record that names them is stored; a record that is refused or fails leaves no
file behind. The file is then named by the record's id, in a folder of the data folder.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from facility.errors import Refused
from facility.model import now_ns
from facility.records import NewFile

# What may be attached, and how each kind's bytes begin.
ATTACHMENT_TYPES: dict[str, tuple[bytes, ...]] = {
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/webp": (b"RIFF",),
    "image/heic": (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypmsf1"),  # at byte 4, after the box size
    "application/pdf": (b"%PDF-",),
}

R = TypeVar("R")


class AttachmentRefused(Refused):
    """An upload that is not kept, whatever the state of its task or step: `status` is the HTTP
    answer it deserves (413 too large, 415 a type not taken or bytes not of it, 503 a service with
    no folder for files)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Checked:
    """An upload that passed the checks: its type as recorded, its size and its digest."""

    content_type: str
    size: int
    sha256: str


class AttachmentFolder:
    """Where one kind of record keeps the bytes of its attachments, and the checks they pass."""

    def __init__(self, folder: Path | None, limit_kb: int, holder: str) -> None:
        """`folder`: in the data folder (None: this service keeps no files, and refuses them);
        `limit_kb`: the site's `api.max_attachment_kb`; `holder`: what takes them, for the
        messages ("a task", "a plan step")."""
        self.folder = folder
        self._limit = limit_kb * 1024
        self._holder = holder

    def check(self, name: str, content_type: str, data: bytes) -> Checked:
        """The upload's type, size and digest, or AttachmentRefused saying what is wrong with it."""
        if len(data) > self._limit:
            raise AttachmentRefused(
                413, f"file: {len(data)} bytes is over the {self._limit // 1024} KiB {self._holder} takes"
            )
        kind = content_type.partition(";")[0].strip().lower()
        starts = ATTACHMENT_TYPES.get(kind)
        if starts is None:
            known = ", ".join(ATTACHMENT_TYPES)
            raise AttachmentRefused(415, f"content type: {kind!r} is not one {self._holder} takes ({known})")
        head = data[4:12] if kind == "image/heic" else data
        if not any(head.startswith(start) for start in starts):
            raise AttachmentRefused(415, f"content type: the bytes of {name!r} are not {kind}")
        return Checked(kind, len(data), hashlib.sha256(data).hexdigest())

    async def keep(
        self,
        name: str,
        content_type: str,
        data: bytes,
        by: str,
        record: Callable[[NewFile], Awaitable[R]],
        id_of: Callable[[R], int],
    ) -> R:
        """Check the upload, write it to disk and sync it, then `record` it (in the ops store, as
        added by `by` now) and name the file by the id `id_of` finds in what `record` returned,
        which this returns."""
        folder = self._folder()
        checked = self.check(name, content_type, data)
        written = await asyncio.to_thread(_written, folder, data)  # megabytes and an fsync: off the loop
        new = NewFile(name, checked.content_type, checked.size, checked.sha256, by, now_ns())
        try:
            recorded = await record(new)
        except BaseException:
            written.unlink()  # refused or failed: no file without its record
            raise
        written.replace(folder / str(id_of(recorded)))
        return recorded

    def path(self, attachment_id: int) -> Path:
        """Where the bytes of the attachment with this id are kept."""
        return self._folder() / str(attachment_id)

    def _folder(self) -> Path:
        if self.folder is None:
            raise AttachmentRefused(503, "attachments: this service has no folder for them")
        return self.folder


def _written(folder: Path, data: bytes) -> Path:
    """`data` in a new file of `folder` (made private to the service, as the spool is), on disk
    before this returns: the record that names it is stored only after."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".upload-", delete=False) as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    return Path(out.name)
