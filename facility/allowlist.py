"""The `writes:` allow-list of a site file: the only (device, point) pairs the gateway may write,
and the values it may write there, checked against the device's profile when the site loads.

Apart from the site model because a write is the one path from the desk back to the plant: what
makes an entry safe (a writable table, a whole register, values the register can carry) is read
here in one place, beside the codec that will encode them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, model_validator

from facility.codec import encode
from facility.profile import ModbusField, Profile
from facility.yamlfile import Loc, Problem, YamlDoc

if TYPE_CHECKING:
    from facility.site import Device


class WriteRule(BaseModel):
    """One (device, point) the gateway may write, and the values it may write there.

    Numbers take a range (`min` and `max`, both) or a list of `values`; bools and enum labels take
    `values`. load_site checks the entry against the device's profile (`allowlist_problems`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    device: str
    point: str
    min: float | None = None
    max: float | None = None
    values: list[bool | int | float | str] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _range_or_values(self) -> WriteRule:
        if self.values is not None and (self.min is not None or self.max is not None):
            raise ValueError("give either a range (`min`, `max`) or a list of `values`, not both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"`min` ({self.min}) is above `max` ({self.max})")
        return self


def allowlist_problems(
    writes: list[WriteRule], devices: dict[str, Device], profiles: dict[str, Profile], doc: YamlDoc
) -> list[Problem]:
    """What is wrong with the site's `writes:` entries (`devices` by id), each at its line: an entry
    given twice is refused too, so that one pair has one set of allowed values."""
    problems = []
    first: dict[tuple[str, str], int] = {}
    for i, rule in enumerate(writes):
        k = first.setdefault((rule.device, rule.point), i)
        found = _write_problem(rule, devices, profiles) if k == i else (("point",), f"already allowed by writes[{k}]")
        if found is not None:
            problems.append(doc.problem(("writes", i, *found[0]), found[1]))
    return problems


def _write_problem(rule: WriteRule, devices: dict[str, Device], profiles: dict[str, Profile]) -> tuple[Loc, str] | None:
    """What is wrong with one allow-list entry, as (field inside the entry, message); None if usable."""
    device = devices.get(rule.device)
    if device is None:
        return ("device",), f"no device {rule.device!r} in this site"
    if device.modbus is None:
        return ("device",), f"{rule.device} is read over MQTT: only Modbus devices can be written"
    profile = profiles[device.profile]
    spec = profile.points.get(rule.point)
    if spec is None or spec.modbus is None:
        known = ", ".join(sorted(profile.points))
        return ("point",), f"profile {device.profile!r} has no point {rule.point!r} (known: {known})"
    field = spec.modbus
    if field.table in ("input", "discrete"):
        kind = "an input register" if field.table == "input" else "a discrete input"
        return ("point",), f"{rule.point} is {kind}: read-only by the Modbus protocol"
    if field.bit is not None:
        neighbours = [
            n
            for n, p in profile.points.items()
            if n != rule.point and p.modbus and p.modbus.table == field.table and p.modbus.address == field.address
        ]
        shared = f" (shared with {', '.join(neighbours)})" if neighbours else ""
        return ("point",), (
            f"{rule.point} is bit {field.bit} of {field.table} register {field.address}{shared}: "
            "writing the register would overwrite its neighbours"
        )
    return _value_problem(rule, field)


def _value_problem(rule: WriteRule, field: ModbusField) -> tuple[Loc, str] | None:
    """Whether the allowed values suit the point: bools for a coil, labels for an enum, numbers that fit."""
    bound: Loc = ("min",) if rule.min is not None else ("max",)
    ranged = rule.min is not None or rule.max is not None
    if field.table == "coil" or field.enum is not None:
        labels: list[bool | str] = [True, False] if field.table == "coil" else list((field.enum or {}).values())
        kinds = "true and/or false" if field.table == "coil" else f"among {', '.join(map(str, labels))}"
        if ranged:
            return bound, f"{rule.point} takes no range: list the allowed `values` ({kinds})"
        if rule.values is None:
            return ("values",), f"{rule.point}: list the allowed `values` ({kinds})"
        for k, allowed in enumerate(rule.values):
            if not any(allowed == label and type(allowed) is type(label) for label in labels):
                return ("values", k), f"{rule.point} cannot take {allowed!r}: list `values` {kinds}"
        return None
    if rule.values is None and (rule.min is None or rule.max is None):
        return ("max",) if rule.min is not None else ("min",), f"{rule.point} needs both `min` and `max`, or `values`"
    candidates: list[tuple[Loc, bool | int | float | str | None]] = (
        [(("min",), rule.min), (("max",), rule.max)]
        if rule.values is None
        else [(("values", k), v) for k, v in enumerate(rule.values)]
    )
    for loc, value in candidates:
        try:
            encode(field, value)
        except ValueError as exc:
            return loc, f"{rule.point} cannot carry {value!r}: {exc}"
    return None
