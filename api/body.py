"""The base of every request body: unknown fields are refused, so that a client cannot set what
the server sets (who acknowledged, when), and text is trimmed before its length is judged."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any, TypeVar

from fastapi import Path, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

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


B = TypeVar("B", bound=BaseModel)


def documented(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` for a route that reads its body itself (`parsed_off_loop`): the body is
    documented as if FastAPI read it."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


async def parsed_off_loop(request: Request, model: type[B]) -> B:
    """The request's JSON body as `model`, parsed and validated in a worker thread: the routes that
    take a whole file take bodies of megabytes, and parsing one on the event loop would hold up the
    gateway and the rules, which share it. A bad body is FastAPI's own 422."""
    raw = await request.body()
    try:
        return await asyncio.to_thread(_validate, model, raw)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None
    except ValueError as exc:  # not JSON at all (ValidationError is one too: caught above)
        error = {"loc": ("body",), "msg": f"the body is not JSON: {exc}", "type": "json_invalid"}
        raise RequestValidationError([error]) from None


def _validate(model: type[B], raw: bytes) -> B:
    """As FastAPI does: the stdlib's JSON (which reads what the client escaped, lone surrogates
    too), then the model, whose errors name the field."""
    return model.model_validate(json.loads(raw))
