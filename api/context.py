"""What the API reads and calls: stores, bus, the rules' lifecycle actions, the write of a point, and
the readiness of every part (for /readyz and /metrics).

`write` and `history` are handed in by the runtime (the gateway's audited write, the telemetry
store's history), so that the API never imports the gateway.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request

from facility.bus import Bus
from facility.errors import Invalid, NotFound
from facility.readiness import Readiness
from facility.records import AlarmRecord, TaskRecord
from facility.site import Device, Site
from facility.store.live import LiveValues
from facility.store.ops import OpsStore
from facility.store.telemetry import Sample
from facility.store.users import User
from facility.writes import WritePoint
from rules.lifecycle import Lifecycle

# (device, point, start ns, end ns, bucket s or None) -> samples; blocking, so called in a thread
History = Callable[[str, str, int, int, float | None], list[Sample]]


def source_of(request: Request) -> str:
    """Where a request came from, for histories and the audit log: the client's address."""
    return request.client.host if request.client else ""


_NOWHERE = {"device_name": "", "building": "", "system": ""}


@dataclass
class ApiContext:
    site: Site
    bus: Bus
    live: LiveValues
    ops: OpsStore
    rules: Lifecycle
    write: WritePoint
    history: History
    readiness: Readiness = field(default_factory=Readiness)  # every part's state and figures: /readyz, /metrics

    def visible(self, user: User) -> set[str] | None:
        """Ids of the devices a user may see; None: every device (no building limit)."""
        return None if user.buildings is None else self.site.devices_in(user.buildings)

    def chosen(
        self, user: User, buildings: Collection[str] = (), systems: Collection[str] = (), ids: Collection[str] = ()
    ) -> set[str] | None:
        """Ids of the devices a list shows: those the user may see, narrowed to the buildings,
        systems and ids asked for (each empty: any); None when nothing narrows them."""
        visible = self.visible(user)
        if not (buildings or systems or ids):
            return visible
        return {
            d.id
            for d in self.site.devices
            if (not buildings or d.location.building in buildings)
            and (not systems or self.site.system_of(d) in systems)
            and (not ids or d.id in ids)
            and (visible is None or d.id in visible)
        }

    def device_for(self, user: User, device_id: str) -> Device:
        """The device, or 404 when it is unknown or in a building the user is not limited to: the
        two look the same, so that a limited user learns nothing of the other buildings."""
        visible = self.visible(user)
        try:
            device = self.site.device(device_id)
        except KeyError:
            device = None
        if device is None or (visible is not None and device.id not in visible):
            raise NotFound(f"no device {device_id!r}")
        return device

    def __post_init__(self) -> None:
        self._places = {
            d.id: {"device_name": d.name, "building": d.location.building, "system": self.site.system_of(d)}
            for d in self.site.devices
        }

    def placed(self, record: AlarmRecord | TaskRecord | Mapping[str, Any]) -> dict[str, Any]:
        """An alarm, task or plan as the API answers it, with where its device is: name, building,
        system (for boards and filters); records of no device, or one the site no longer has, get
        empty strings."""
        shown = record.as_json() if isinstance(record, AlarmRecord | TaskRecord) else dict(record)
        return {**shown, **self._places.get(shown.get("device") or "", _NOWHERE)}

    def ns_of(self, moment: datetime, field: str, where: str = "query") -> int:
        """UTC ns of a time from a request; one without an offset is the site's local time. A time
        the stores cannot hold (before 1970, after 2262) is a 422 naming `field`."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=ZoneInfo(self.site.site.timezone))
        ns = int(moment.timestamp() * 1e6) * 1000
        if not 0 <= ns < 2**63:
            raise Invalid("a time between 1970 and 2262", field=field, where=where)
        return ns

    def may_see(self, user: User, device_id: str | None) -> bool:
        """Whether a record of this device (None: site-wide, such as a complaint) is the user's to see."""
        visible = self.visible(user)
        return visible is None or device_id is None or device_id in visible
