"""What the API reads and calls: stores, bus, the rules' lifecycle actions, and the write of a point.

`write` is handed in by the runtime (the gateway's audited write), so that the API never imports
the gateway.
"""

from __future__ import annotations

from dataclasses import dataclass

from facility.bus import Bus
from facility.site import Site
from facility.store.live import LiveValues
from facility.store.ops import OpsStore
from facility.writes import WritePoint
from rules.alarms import AlarmService


@dataclass
class ApiContext:
    site: Site
    bus: Bus
    live: LiveValues
    ops: OpsStore
    alarms: AlarmService
    write: WritePoint
