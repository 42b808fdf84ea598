"""Photos and files on a task or a plan step, as the API takes and gives them: how an upload and a
download are documented, what a listed file says, and the bytes of a kept one.

The checks an upload passes (type, size, the bytes matching the type) are the rules'
(rules.attachments): a refused file is a `Refused` whose status (413, 415, 503) the app's handler
answers (api.errors).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

from fastapi import Query
from fastapi.responses import FileResponse

from api import schemas
from facility.errors import NotFound
from rules.attachments import ATTACHMENT_TYPES

log = logging.getLogger(__name__)


class AttachmentInfo(schemas.Answer):
    """A photo or file on a task or a plan step, as its list shows it; `url` downloads it."""

    id: int
    name: str
    content_type: str
    size: int
    sha256: str
    added_by: str
    added_at: int
    url: str


# The bodies the upload takes, and the download gives: the types an attachment may be (rules.attachments).
UPLOAD_CONTENT = {kind: {"schema": {"type": "string", "format": "binary"}} for kind in ATTACHMENT_TYPES}
# How an upload route and a download route of an attachment are documented, for tasks and plan steps.
UPLOAD: dict[str, Any] = {
    "status_code": 201,
    "response_model": AttachmentInfo,
    "responses": {413: {"description": "larger than api.max_attachment_kb"}, 415: {"description": "not a type taken"}},
    "openapi_extra": {"requestBody": {"required": True, "content": UPLOAD_CONTENT}},
}
DOWNLOAD: dict[str, Any] = {
    "response_class": FileResponse,
    "responses": {200: {"content": UPLOAD_CONTENT, "description": "the file as it was sent"}},
}
FileName = Annotated[str, Query(min_length=1, max_length=200, description="the file's name, as the phone gave it")]


def kept_file(kept: Path, content_type: str, name: str, of: str) -> FileResponse:
    """The bytes of an attachment of `of` (a task, a plan step) as they were sent; a record whose
    file is gone from the data folder is logged, for the operator to restore it from a backup."""
    if not kept.is_file():
        log.error("%s: the file %s of attachment %r is missing", of, kept, name)
        raise NotFound(f"the file of attachment {name!r} is missing from the data folder")
    return FileResponse(kept, media_type=content_type, filename=name)
