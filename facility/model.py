"""The data every part exchanges: readings with quality, priorities and alarm states."""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum

Value = float | int | bool | str | None


class Quality(StrEnum):
    """How far a value can be trusted; shown next to every value, never hidden."""

    GOOD = "good"
    STALE = "stale"  # no fresh value within a multiple of the expected interval
    NO_COMM = "no_comm"  # the device stopped answering
    BAD = "bad"  # the device answered with a value that means "not available" or garbage


@dataclass(slots=True, frozen=True)
class Reading:
    """One point's value at a time. `ts` is UTC nanoseconds."""

    device: str
    point: str
    value: Value
    quality: Quality
    ts: int


@dataclass(slots=True, frozen=True)
class DeviceStatus:
    """A device's own word on whether it is there (an MQTT status topic, a poller hearing it or
    not), at `ts` (UTC ns). Not a reading: it carries no value, so its points keep theirs."""

    device: str
    online: bool
    ts: int


class Priority(StrEnum):
    EMERGENCY = "emergency"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class AlarmState(StrEnum):
    """ISA-18.2 states of an alarm that has been raised."""

    UNACKNOWLEDGED = "unacknowledged"  # active, not yet acknowledged
    ACKNOWLEDGED = "acknowledged"  # active, acknowledged
    RTN_UNACKNOWLEDGED = "rtn_unacknowledged"  # returned to normal, never acknowledged
    NORMAL = "normal"  # returned to normal and acknowledged: closed
    SHELVED = "shelved"  # hidden by a user, with a reason, until an expiry
    SUPPRESSED = "suppressed"  # suppressed by design: the plant state makes it irrelevant
    OUT_OF_SERVICE = "out_of_service"  # its device is under maintenance

    @staticmethod
    def of(
        active: bool,
        acknowledged: bool,
        *,
        shelved: bool = False,
        suppressed: bool = False,
        out_of_service: bool = False,
    ) -> AlarmState:
        """A closed alarm is normal whatever it carried; otherwise the reason it is kept from duty
        staff comes first (the widest one: maintenance, then a user's shelf, then design)."""
        if not active and acknowledged and not shelved:
            return AlarmState.NORMAL
        if out_of_service:
            return AlarmState.OUT_OF_SERVICE
        if shelved:
            return AlarmState.SHELVED
        if suppressed:
            return AlarmState.SUPPRESSED
        if active:
            return AlarmState.ACKNOWLEDGED if acknowledged else AlarmState.UNACKNOWLEDGED
        return AlarmState.RTN_UNACKNOWLEDGED


def now_ns() -> int:
    return time.time_ns()
