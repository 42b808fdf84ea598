"""What the API reads and calls: stores, bus and the rules' lifecycle actions."""

from __future__ import annotations

from dataclasses import dataclass

from facility.bus import Bus
from facility.site import Site
from facility.store.live import LiveValues
from facility.store.ops import OpsStore
from rules.alarms import AlarmService


@dataclass
class ApiContext:
    site: Site
    bus: Bus
    live: LiveValues
    ops: OpsStore
    alarms: AlarmService
