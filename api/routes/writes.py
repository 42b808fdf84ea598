"""Writing a point of a device: a setpoint, a lighting circuit on or off.

Only the points in the site's `writes:` allow-list can be written. The check, the Modbus write and
the audit entry happen behind `ctx.write` (wired by the runtime to the gateway); this route only
names the user and the client address and turns the outcome into a status:
200 with the value read back, 403 not allow-listed, 404 unknown device or point, 422 a value the
allow-list or the register refuses (naming `value`), 502 the device did not answer or refused,
503 the audit log cannot be written (and so nothing was).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request

from api.body import Body
from api.context import source_of
from api.deps import Ctx, Engineer
from facility.errors import NotFound
from facility.writes import AuditUnavailable, DeviceFailed, WriteError

# Unknown targets (NotFound), points off the allow-list (Refused) and bad values (Invalid) are
# answered by the error tree's handlers; these two are about the device and the audit log.
_STATUS: list[tuple[type[WriteError], int]] = [(DeviceFailed, 502), (AuditUnavailable, 503)]


class WriteRequest(Body):
    """The value to write: a number, true/false, or an enum label, as the point takes."""

    value: bool | int | float | str


router = APIRouter(tags=["writes"])


@router.post("/devices/{device}/points/{point}/write")
async def write(
    ctx: Ctx, device: str, point: str, body: WriteRequest, request: Request, user: Engineer
) -> dict[str, Any]:
    """Write an allow-listed point and return the value the device reads back."""
    if not ctx.may_see(user, device):  # another building's device is unknown to a limited user
        raise NotFound(f"no device {device!r}")
    source = source_of(request)
    try:
        confirmed = await ctx.write(device, point, body.value, actor=user.name, source=source)
    except (DeviceFailed, AuditUnavailable) as exc:
        status = next(code for kind, code in _STATUS if isinstance(exc, kind))
        raise HTTPException(status, str(exc)) from None
    return {"device": device, "point": point, "value": confirmed}
