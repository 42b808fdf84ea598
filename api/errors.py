"""How the API answers an error: one exception handler per branch of the project's error tree
(facility.errors), so that a route raises what went wrong and never maps it to a status itself.

- `NotFound` → 404, `Conflict` → 409, `Refused` → its `status` (403 for a policy, 415 for a file
  type), each with the exception's message as `detail`;
- `Invalid` → 422 in the shape of FastAPI's own validation errors, naming the field, so that a
  client handles one kind of 422;
- `Unavailable` (the ops store down) → 503 with a `Retry-After` instead of a 500 (`unavailable()`
  gives the same answer for the edge, which answers before the app's handlers run);
- FastAPI's own 422, written as ASCII JSON.

Lists, details, users and every action read or change the ops store; live values and the event
stream do not, and alarms are still raised and shown while it is down (rules.outcomes journals
them), which the 503 says so that duty staff know where to look.
"""

from __future__ import annotations

import json

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from facility.errors import Conflict, Invalid, NotFound, Refused, Unavailable

RETRY_AFTER_S = 5
DETAIL = (
    "the ops store does not answer: alarms, tasks, plans and users cannot be read or changed now; "
    "new alarms are still raised and shown on the event stream, and recorded when it answers again"
)
HEADERS = {"Retry-After": str(RETRY_AFTER_S)}


def unavailable() -> HTTPException:
    """The 503 of the ops store down, for the token check: it runs at the edge, before the app."""
    return HTTPException(503, DETAIL, headers=HEADERS)


async def _not_found(_: Request, exc: Exception) -> Response:
    return JSONResponse({"detail": str(exc)}, status_code=404)


async def _conflict(_: Request, exc: Exception) -> Response:
    return JSONResponse({"detail": str(exc)}, status_code=409)


async def _refused(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refused)
    return JSONResponse({"detail": str(exc)}, status_code=exc.status)


async def _invalid(_: Request, exc: Exception) -> Response:
    """The field in `loc`, the message in `msg`: a message that begins with its field's name (as the
    stores' and rules' do, for logs and the command line) does not say it twice."""
    assert isinstance(exc, Invalid)
    shown = [m.removeprefix(f"{exc.field}: ") for m in exc.messages]
    detail = [{"loc": [exc.where, exc.field], "msg": m, "type": "value_error"} for m in shown]
    return JSONResponse({"detail": detail}, status_code=422)


async def _unavailable(_: Request, exc: Exception) -> Response:
    """503 for a request that needed the ops store while it is down (the driver's error is logged
    by the store, not shown to clients)."""
    return JSONResponse({"detail": DETAIL}, status_code=503, headers=HEADERS)


async def _validation_failed(_: Request, exc: Exception) -> Response:
    """FastAPI's 422 in its own shape, written as ASCII JSON: the input it echoes may hold text that
    is not valid UTF-8 (a lone surrogate), which must come back as an error, not a crash."""
    assert isinstance(exc, RequestValidationError)
    body = json.dumps({"detail": jsonable_encoder(exc.errors())}, ensure_ascii=True, default=str)
    return Response(body, status_code=422, media_type="application/json")


def handle_errors(app: FastAPI) -> None:
    """Give `app` the handlers of every branch of the error tree."""
    app.add_exception_handler(NotFound, _not_found)
    app.add_exception_handler(Conflict, _conflict)
    app.add_exception_handler(Refused, _refused)
    app.add_exception_handler(Invalid, _invalid)
    app.add_exception_handler(Unavailable, _unavailable)
    app.add_exception_handler(RequestValidationError, _validation_failed)
