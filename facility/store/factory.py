"""Opens the telemetry store a site file names: a SQLite file, or InfluxDB."""

from __future__ import annotations

from pathlib import Path

from facility.site import Stores
from facility.store.influx import InfluxTelemetry
from facility.store.sqlite_telemetry import SqliteTelemetry
from facility.store.telemetry import TelemetryStore


def open_telemetry(stores: Stores, base: Path, site: str) -> TelemetryStore:
    """The configured store of the estate `site`; a relative SQLite path is taken from `base` (the
    site's folder). A SQLite file is one estate's; an InfluxDB database may be shared, its readings
    tagged with their site."""
    if isinstance(stores.telemetry, str):
        path = Path(stores.telemetry)
        return SqliteTelemetry(path if path.is_absolute() else base / path, retention_s=stores.retention)
    return InfluxTelemetry(stores.telemetry, site=site)
