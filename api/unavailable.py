"""The API's answer while the ops store does not answer: 503 naming the ops store, with a
`Retry-After`, instead of a 500. Lists, details, users and every action read or change the ops
store; live values and the event stream do not, and alarms are still raised and shown meanwhile
(rules.outcomes journals them), which the answer says so that duty staff know where to look.

`ops_unavailable` is the app's exception handler for `OpsUnavailable`; `unavailable()` gives the
same answer as an HTTPException, for dependencies that must answer before a route runs (auth).
"""

from __future__ import annotations

from fastapi import HTTPException, Request, Response
from fastapi.responses import JSONResponse

from facility.store.ops import OpsUnavailable

RETRY_AFTER_S = 5
DETAIL = (
    "the ops store does not answer: alarms, tasks, plans and users cannot be read or changed now; "
    "new alarms are still raised and shown on the event stream, and recorded when it answers again"
)
HEADERS = {"Retry-After": str(RETRY_AFTER_S)}


async def ops_unavailable(request: Request, exc: Exception) -> Response:
    """503 for a request that needed the ops store while it is down (the driver's error is logged
    by the store, not shown to clients)."""
    assert isinstance(exc, OpsUnavailable)
    return JSONResponse({"detail": DETAIL}, status_code=503, headers=HEADERS)


def unavailable() -> HTTPException:
    return HTTPException(503, DETAIL, headers=HEADERS)
