"""Equipment records (设备台账) in the ops store: what the nameplate, the purchase and the
maintenance contract say of each device, which the duty of archive keeping asks the property
company to hold.

A record is keyed by the device id of the site file and is kept when the file no longer has the
device, so that its archive outlives it. Dates are ISO `YYYY-MM-DD` strings, as the nameplate and
the contract give them (no time of day, no time zone); the API edge validates them. Text not
filled in is an empty string, so that every reader handles one kind of "nothing".
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, fields

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from facility.store.ops import OpsStore
from facility.store.site_scope import by_key
from facility.store.tables import EquipmentRow


@dataclass(frozen=True)
class EquipmentRecord:
    """One device's record as engineers wrote it. `updated_by` is empty and `updated_at` 0 for a
    record nobody has written yet (`blank`)."""

    device_id: str
    model: str = ""
    manufacturer: str = ""
    serial_number: str = ""
    install_date: str | None = None  # YYYY-MM-DD
    warranty_end: str | None = None
    vendor: str = ""  # a vendor id of the site file, or the name of a company it does not list
    contract: str = ""  # the maintenance contract's number or name
    contract_end: str | None = None
    location: str = ""  # where exactly, beyond the site file's building, floor and room
    notes: str = ""
    updated_by: str = ""
    updated_at: int = 0  # UTC ns

    @property
    def written(self) -> bool:
        """Whether anyone has saved this record (a blank one is what the desk starts from)."""
        return self.updated_at != 0


# The fields an engineer writes; who and when are the store's to set.
WRITTEN_FIELDS = tuple(
    f.name for f in fields(EquipmentRecord) if f.name not in ("device_id", "updated_by", "updated_at")
)


def _record(row: EquipmentRow) -> EquipmentRecord:
    return EquipmentRecord(**{f.name: getattr(row, f.name) for f in fields(EquipmentRecord)})


class EquipmentStore:
    """Equipment records on the ops store's database."""

    def __init__(self, ops: OpsStore) -> None:
        self._sessions = ops.sessions

    async def get(self, device_id: str) -> EquipmentRecord | None:
        async with self._sessions() as s:
            row = await by_key(s, EquipmentRow, device_id=device_id)
            return None if row is None else _record(row)

    async def of_devices(self, device_ids: Collection[str]) -> dict[str, EquipmentRecord]:
        """The records of those devices that have one, by device id (a device the site file no
        longer has keeps its record: ask for it by its id)."""
        if not device_ids:
            return {}
        query = select(EquipmentRow).where(EquipmentRow.device_id.in_(sorted(device_ids)))
        async with self._sessions() as s:
            return {row.device_id: _record(row) for row in await s.scalars(query)}

    async def save(self, record: EquipmentRecord, by: str, ts: int) -> EquipmentRecord:
        """Write the whole record (insert or replace), as saved by `by` at `ts` (UTC ns); returns it
        as stored. The row is locked while it changes (PostgreSQL), so that of two engineers saving
        at once the later one's record is the one kept whole, never a mix of both."""
        try:
            return await self._write(record, by, ts)
        except IntegrityError:  # another engineer made the device's first record meanwhile: replace it
            return await self._write(record, by, ts)

    async def _write(self, record: EquipmentRecord, by: str, ts: int) -> EquipmentRecord:
        values = {name: getattr(record, name) for name in WRITTEN_FIELDS}
        async with self._sessions.begin() as s:
            row = await by_key(s, EquipmentRow, lock=True, device_id=record.device_id)
            if row is None:
                row = EquipmentRow(device_id=record.device_id, **values, updated_by=by, updated_at=ts)
                s.add(row)
            else:
                for name, value in values.items():
                    setattr(row, name, value)
                row.updated_by, row.updated_at = by, ts
            await s.flush()
            return _record(row)
