"""The base of every request body: unknown fields are refused, so that a client cannot set what
the server sets (who acknowledged, when), and text is trimmed before its length is judged."""

from __future__ import annotations

from fastapi import HTTPException
from pydantic import BaseModel, ConfigDict


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def field_error(where: str, field: str, message: str) -> HTTPException:
    """A 422 in the shape of FastAPI's own validation errors, so that clients handle one kind."""
    return HTTPException(422, [{"loc": [where, field], "msg": message, "type": "value_error"}])


def query_error(field: str, message: str) -> HTTPException:
    return field_error("query", field, message)
