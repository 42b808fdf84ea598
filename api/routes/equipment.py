"""Equipment records (设备台账): a device's record (model, manufacturer, serial number, install date,
warranty, maintenance vendor and contract, exact location, notes), which engineers write; the
device's whole history of alarms, tasks and service; and the ledger of every device the user may
see, as CSV or an Excel workbook.

A user limited to buildings reads and writes the records of their buildings' devices only; a device
of another building is a 404, as an unknown one is.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from pydantic import Field, field_validator

from api import schemas
from api.body import MAX_ID, Body
from api.context import ApiContext
from api.deps import Ctx, Engineer, Viewer
from api.download import LIST_FILE, ListFormatQuery, ListLangQuery, list_file
from facility.errors import Invalid
from facility.model import now_ns
from facility.site import Device
from facility.store.device_history import device_history
from facility.store.equipment import EquipmentRecord, EquipmentStore
from reports.equipment import ledger
from rules.tasks import name_pair

Line = Annotated[str, Field(max_length=200)]
Day = Annotated[date | None, Field(description="YYYY-MM-DD, or null when not known")]


class RecordBody(Body):
    """The whole record: a field left out is saved empty."""

    model: Line = ""
    manufacturer: Line = ""
    serial_number: Line = ""
    install_date: Day = None
    warranty_end: Day = None
    vendor: Line = Field(default="", description="a vendor id of the site (GET /site), or a company's name")
    contract: Line = Field(default="", description="the maintenance contract's number or name")
    contract_end: Day = None
    location: str = Field(default="", max_length=500, description="where exactly, beyond building, floor and room")
    notes: str = Field(default="", max_length=4000)

    @field_validator("install_date", "warranty_end", "contract_end", mode="before")
    @classmethod
    def _iso_day(cls, value: object) -> object:
        """Only a `YYYY-MM-DD` text is a day: a number or a time of day would be read as one
        silently. An empty text is no date, as an empty date input sends it."""
        if value is None or value == "":
            return None
        if not isinstance(value, str) or len(value) != 10:
            raise ValueError("a date written YYYY-MM-DD")
        return value


class Place(schemas.Answer):
    building: str
    floor: str
    room: str


class Record(schemas.Answer):
    """A device's record, with what the site file says of the device. `written` is false for a
    device nobody described yet: its fields are empty (the vendor the site file's)."""

    device: str
    name: str
    type: str
    system: str
    place: Place = Field(description="the site file's building, floor and room")
    model: str
    manufacturer: str
    serial_number: str
    install_date: str | None
    warranty_end: str | None
    vendor: str
    vendor_name: schemas.Text | None = Field(description="the site file's name of `vendor`, when it is one of its ids")
    contract: str
    contract_end: str | None
    location: str
    notes: str
    written: bool
    updated_by: str | None
    updated_at: int | None


class HistoryItem(schemas.Answer):
    """One entry of a device's history: of one of its alarms or tasks (`id` names it), or of the
    device itself (out of service, back in service, record saved; `id` null)."""

    kind: Literal["alarm", "task", "device"]
    id: int | None
    ts: int
    action: str
    actor: str
    detail: str
    title: schemas.Text
    priority: str


class HistoryPage(schemas.Answer):
    items: list[HistoryItem]
    total: int
    limit: int
    offset: int


def vendor_name(ctx: ApiContext, vendor: str) -> schemas.Text | None:
    """The site file's name of a vendor id; None for a company the site file does not know."""
    known = next((v for v in ctx.site.vendors if v.id == vendor), None)
    if known is None:
        return None
    pair = name_pair(known.name or known.id)
    return schemas.Text(zh=pair.zh, en=pair.en)


def answer(ctx: ApiContext, device: Device, found: EquipmentRecord | None) -> Record:
    """The record of `device` as the API answers it, with what the site file says of the device."""
    record = found or EquipmentRecord(device.id, vendor=device.vendor or "")
    profile = ctx.site.profile_of(device)
    return Record(
        device=device.id,
        name=device.name,
        type=device.type or profile.type,
        system=profile.system,
        place=Place(**device.location.model_dump()),
        model=record.model,
        manufacturer=record.manufacturer,
        serial_number=record.serial_number,
        install_date=record.install_date,
        warranty_end=record.warranty_end,
        vendor=record.vendor,
        vendor_name=vendor_name(ctx, record.vendor),
        contract=record.contract,
        contract_end=record.contract_end,
        location=record.location,
        notes=record.notes,
        written=record.written,
        updated_by=record.updated_by if record.written else None,
        updated_at=record.updated_at if record.written else None,
    )


def written(device: Device, body: RecordBody) -> EquipmentRecord:
    """The record a body writes; a warranty or contract that ends before the install date is a
    422 naming the field."""
    for end in ("warranty_end", "contract_end"):
        ends = getattr(body, end)
        if body.install_date is not None and ends is not None and ends < body.install_date:
            raise Invalid(f"ends {ends} before the install date {body.install_date}", field=end)
    return EquipmentRecord(
        device.id,
        model=body.model,
        manufacturer=body.manufacturer,
        serial_number=body.serial_number,
        install_date=_iso(body.install_date),
        warranty_end=_iso(body.warranty_end),
        vendor=body.vendor,
        contract=body.contract,
        contract_end=_iso(body.contract_end),
        location=body.location,
        notes=body.notes,
    )


router = APIRouter(tags=["equipment"])


@router.get("/devices/{device_id}/record", response_model=Record)
async def record(ctx: Ctx, device_id: str, user: Viewer) -> Record:
    """The device's equipment record; one nobody wrote yet comes empty (`written` false)."""
    device = ctx.device_for(user, device_id)
    return answer(ctx, device, await EquipmentStore(ctx.ops).get(device.id))


@router.put("/devices/{device_id}/record", response_model=Record)
async def save(ctx: Ctx, device_id: str, body: RecordBody, user: Engineer) -> Record:
    """Write the device's whole record (engineers). A warranty or contract that ends before the
    install date is refused, naming the field."""
    device = ctx.device_for(user, device_id)
    saved = await EquipmentStore(ctx.ops).save(written(device, body), user.name, now_ns())
    return answer(ctx, device, saved)


@router.get("/devices/{device_id}/history", response_model=HistoryPage)
async def history(
    ctx: Ctx,
    device_id: str,
    user: Viewer,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> HistoryPage:
    """Everything that happened to the device, newest first: each entry of its alarms' and
    tasks' histories, when it was taken out of service and put back, and each save of its
    record. Its readings are its points' trends (`/devices/{id}/points/{point}/history`)."""
    device = ctx.device_for(user, device_id)
    page = await device_history(ctx.ops, device.id, limit=limit, offset=offset)
    items = [
        HistoryItem(
            kind=e.kind,
            id=e.ref,
            ts=e.ts,
            action=e.action,
            actor=e.actor,
            detail=e.detail,
            title=schemas.Text(zh=e.title_zh, en=e.title_en),
            priority=e.priority,
        )
        for e in page.entries
    ]
    return HistoryPage(items=items, total=page.total, limit=limit, offset=offset)


@router.get("/equipment", response_class=Response, responses=LIST_FILE)
async def export(ctx: Ctx, user: Viewer, fmt: ListFormatQuery = "xlsx", lang: ListLangQuery = "zh") -> Response:
    """The equipment ledger of every device the user may see, in the site file's order, as a
    download: an Excel workbook or a CSV file."""
    visible = ctx.visible(user)
    devices = [d for d in ctx.site.devices if visible is None or d.id in visible]
    records = await EquipmentStore(ctx.ops).of_devices({d.id for d in devices})
    return list_file(ledger(ctx.site, devices, records, now_ns(), visible is not None), fmt, lang)


def _iso(day: date | None) -> str | None:
    return None if day is None else day.isoformat()
