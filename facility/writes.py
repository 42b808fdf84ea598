"""Writing a point: the allow-list check, the errors of a write, and the callable the API is given.

This sits in the kernel because two packages that must not import each other meet here: the
gateway enforces the check before it touches a bus, and the API turns the errors into HTTP
statuses. Each error carries the `outcome` the audit log records for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Protocol

from facility.allowlist import WriteRule
from facility.codec import encode
from facility.errors import Invalid, NotFound, Refused
from facility.model import Value
from facility.profile import ModbusField, PointSpec
from facility.site import Device, Site


class WriteError(Exception):
    """A write that did not happen."""

    outcome: ClassVar[str] = "refused"  # what the audit log records


class UnknownTarget(WriteError, NotFound):
    """No such device, or no such point on it."""


class NotAllowed(WriteError, Refused):
    """The (device, point) is not in the site's `writes:` allow-list."""


class BadValue(WriteError, Invalid):
    """The value is of the wrong type, outside the allowed range or list, or does not fit the register."""

    def __init__(self, message: str) -> None:
        super().__init__(message, field="value")  # the request field the API names


class DeviceFailed(WriteError):
    """The value was sent (or meant to be) but the device did not take it."""

    outcome = "failed"


class DeviceOffline(DeviceFailed):
    """The device did not answer (timeout, no connection)."""


class DeviceRefused(DeviceFailed):
    """The device answered with a Modbus exception."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class NotConfirmed(DeviceFailed):
    """The device acknowledged the write but reads back another value."""


class AuditUnavailable(WriteError):
    """The audit log cannot be written, so nothing is written to the device either."""

    outcome = "failed"


@dataclass(frozen=True)
class Target:
    """An allow-listed point, resolved against the site."""

    device: Device
    point: str
    spec: PointSpec
    field: ModbusField
    rule: WriteRule


def resolve(site: Site, device_id: str, point: str) -> Target:
    """The allow-listed point; UnknownTarget or NotAllowed otherwise."""
    try:
        device = site.device(device_id)
    except KeyError:
        raise UnknownTarget(f"no device {device_id!r}") from None
    spec = site.profile_of(device).points.get(point)
    if spec is None:
        raise UnknownTarget(f"{device_id} has no point {point!r}")
    rule = site.write_rule(device_id, point)
    if rule is None or spec.modbus is None:  # load_site allows only Modbus points
        raise NotAllowed(f"{device_id} {point} is not in the site's `writes:` allow-list")
    return Target(device, point, spec, spec.modbus, rule)


def _kind(value: object) -> str:
    return "bool" if isinstance(value, bool) else "number" if isinstance(value, int | float) else type(value).__name__


def check_value(target: Target, value: object) -> Value:
    """`value` if the allow-list entry admits it and the register can carry it; BadValue otherwise."""
    rule, unit = target.rule, f" {target.spec.unit}" if target.spec.unit else ""
    if rule.values is not None:
        if not any(_kind(value) == _kind(a) and value == a for a in rule.values):
            allowed = ", ".join(map(_json, rule.values))
            raise BadValue(f"{_json(value)} is not an allowed value of {target.point} (allowed: {allowed})")
    elif rule.min is None or rule.max is None:  # load_site refuses such an entry; never write unbounded
        raise NotAllowed(f"the allow-list entry of {target.device.id} {target.point} has no range")
    elif not isinstance(value, int | float) or isinstance(value, bool):
        raise BadValue(f"{target.point} takes a number, not {_json(value)}")
    elif not math.isfinite(value) or not rule.min <= value <= rule.max:
        raise BadValue(f"{value} is outside the allowed range {rule.min}..{rule.max}{unit} of {target.point}")
    assert isinstance(value, bool | int | float | str)
    try:
        encode(target.field, value)
    except ValueError as exc:
        raise BadValue(f"{target.point} cannot carry {_json(value)}: {exc}") from None
    return value


def _json(value: object) -> str:
    """A value as the request spelt it (true, not True)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, str) else str(value)


class WritePoint(Protocol):
    """What the API calls to write a point: checked, carried out, audited; returns the confirmed value."""

    async def __call__(self, device: str, point: str, value: Value, *, actor: str, source: str) -> Value: ...
