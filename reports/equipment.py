"""The equipment ledger (设备台账) as a report: one table, a line per device, with where the site file
puts it and what its equipment record says, for the archive and for a spreadsheet (CSV, Excel).

Devices come in the site file's order; a device nobody described has its record's cells empty, so
that the ledger shows what is still to be filled in. The maintenance vendor is named as the site
file names it when the record gives one of its vendor ids, else as the engineer wrote it. Dates
stay the ISO `YYYY-MM-DD` of the nameplate and the contract.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from facility.site import Device, Site
from facility.store.equipment import EquipmentRecord
from reports.model import Column, Report, Row, Section, text

COLUMNS = [
    Column("device", text("设备编号", "Device id")),
    Column("name", text("设备名称", "Name")),
    Column("type", text("设备类型", "Type"), "word"),
    Column("system", text("所属系统", "System"), "word"),
    Column("building", text("楼栋", "Building")),
    Column("floor", text("楼层", "Floor")),
    Column("room", text("房间", "Room")),
    Column("location", text("安装位置", "Location")),
    Column("model", text("型号", "Model")),
    Column("manufacturer", text("生产厂家", "Manufacturer")),
    Column("serial_number", text("出厂编号", "Serial number")),
    Column("install_date", text("安装日期", "Installed"), "date"),
    Column("warranty_end", text("质保到期", "Warranty ends"), "date"),
    Column("vendor", text("维保单位", "Maintenance vendor")),
    Column("contract", text("维保合同", "Maintenance contract")),
    Column("contract_end", text("合同到期", "Contract ends"), "date"),
    Column("notes", text("备注", "Notes")),
    Column("updated_by", text("最后修改人", "Last changed by"), "name"),
    Column("updated_at", text("最后修改时间", "Last changed"), "time"),
]


def vendor_name(site: Site, vendor: str) -> str:
    """The vendor as the site file names it when `vendor` is one of its ids, else as written."""
    known = next((v for v in site.vendors if v.id == vendor), None)
    return (known.name or known.id) if known is not None else vendor


def ledger(
    site: Site, devices: Iterable[Device], records: Mapping[str, EquipmentRecord], now: int, limited: bool
) -> Report:
    """The ledger of `devices` (those the reader may see: `limited` says it is not the whole site)."""
    shown = list(devices)
    rows = [_row(site, device, records.get(device.id)) for device in shown]
    ids = sorted(d.id for d in shown)
    return Report(
        kind="equipment",
        title=text("设备台账", "Equipment records"),
        site=site.site.id,
        site_name=site.site.name,
        timezone=site.site.timezone,
        start=now,
        end=now,
        generated_at=now,
        devices=ids if limited else None,
        buildings=sorted({d.location.building for d in shown if d.location.building}) if limited else None,
        sections=[Section("equipment", text("设备台账", "Equipment records"), columns=COLUMNS, rows=rows)],
    )


def _row(site: Site, device: Device, record: EquipmentRecord | None) -> Row:
    profile = site.profile_of(device)
    row: Row = {
        "device": device.id,
        "name": device.name,
        "type": device.type or profile.type,
        "system": profile.system,
        "building": device.location.building,
        "floor": device.location.floor,
        "room": device.location.room,
    }
    if record is None:
        return {**row, "vendor": vendor_name(site, device.vendor) if device.vendor else None}
    return {
        **row,
        "location": record.location,
        "model": record.model,
        "manufacturer": record.manufacturer,
        "serial_number": record.serial_number,
        "install_date": record.install_date,
        "warranty_end": record.warranty_end,
        "vendor": vendor_name(site, record.vendor) if record.vendor else None,
        "contract": record.contract,
        "contract_end": record.contract_end,
        "notes": record.notes,
        "updated_by": record.updated_by,
        "updated_at": record.updated_at,
    }
