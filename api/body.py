"""The base of every request body: unknown fields are refused, so that a client cannot set what
the server sets (who acknowledged, when), and text is trimmed before its length is judged."""

from __future__ import annotations

from typing import Annotated

from fastapi import HTTPException, Path
from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

MAX_ID = 2**63 - 1  # the largest id (and offset) the stores can hold
RecordId = Annotated[int, Path(ge=1, le=MAX_ID, description="the record's id")]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: object, info: ValidationInfo) -> object:
        """A NUL character is refused by PostgreSQL and means nothing in a note: refuse it here."""
        texts = value if isinstance(value, list) else [value]
        if any(isinstance(t, str) and "\x00" in t for t in texts):
            raise ValueError("NUL characters are not allowed")
        return value


def field_error(where: str, field: str, message: str) -> HTTPException:
    """A 422 in the shape of FastAPI's own validation errors, so that clients handle one kind."""
    return HTTPException(422, [{"loc": [where, field], "msg": message, "type": "value_error"}])


def query_error(field: str, message: str) -> HTTPException:
    return field_error("query", field, message)
