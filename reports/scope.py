"""What a report may show: the site's devices, limited to a set for a user limited to buildings, and
how it names them. The read-side queries (facility.store.reads) keep within the same limit."""

from __future__ import annotations

from collections.abc import Iterable
from zoneinfo import ZoneInfo

from facility.site import Site
from facility.vocabulary import Text
from reports.model import Report, ReportKind

OTHER = "other"  # the system of a device the site no longer has


class Scope:
    """The site seen through a device limit (None: the whole site). Records of devices the site no
    longer lists are kept for the whole site and dropped for a limited view."""

    def __init__(self, site: Site, devices: Iterable[str] | None) -> None:
        self.site = site
        self.zone = ZoneInfo(site.site.timezone)
        self.limit = None if devices is None else frozenset(devices)
        self.devices = [d for d in site.devices if self.limit is None or d.id in self.limit]
        self._by_id = {d.id: d for d in site.devices}

    def sees(self, device_id: str | None) -> bool:
        """Whether a record of this device (None: site-wide) belongs in the report."""
        return self.limit is None or device_id is None or device_id in self.limit

    def name(self, device_id: str | None) -> str:
        if device_id is None:
            return ""
        device = self._by_id.get(device_id)
        return (device.name or device.id) if device else device_id

    def building(self, device_id: str | None) -> str:
        device = self._by_id.get(device_id or "")
        return device.location.building if device else ""

    def system(self, device_id: str) -> str:
        device = self._by_id.get(device_id)
        return self.site.system_of(device) if device else OTHER

    def vendor(self, vendor_id: str) -> str:
        """A vendor's name; its id when it has none or the site no longer lists it."""
        return next((v.name or v.id for v in self.site.vendors if v.id == vendor_id), vendor_id)

    def systems(self) -> list[str]:
        """The systems of the devices in view, sorted."""
        return sorted({self.site.system_of(d) for d in self.devices})

    def report(self, kind: ReportKind, title: Text, start: int, end: int, generated_at: int) -> Report:
        """An empty report of this scope, to add sections to."""
        limited = None if self.limit is None else sorted(self.limit)
        buildings = None if self.limit is None else sorted({d.location.building for d in self.devices} - {""})
        return Report(
            kind=kind,
            title=title,
            site=self.site.site.id,
            site_name=self.site.site.name,
            timezone=self.site.site.timezone,
            start=start,
            end=end,
            generated_at=generated_at,
            devices=limited,
            buildings=buildings,
        )
