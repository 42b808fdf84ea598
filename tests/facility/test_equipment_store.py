"""Equipment records (设备台账) are written whole, replaced whole, read one, some or all, and say who
saved them when; on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from facility.store.equipment import EquipmentRecord, EquipmentStore
from facility.store.ops import OpsStore

PUMP = EquipmentRecord(
    device_id="pump-b2-1",
    model="CDLF 32-40",
    manufacturer="南方泵业",
    serial_number="SN-2021-0042",
    install_date="2021-06-01",
    warranty_end="2024-05-31",
    vendor="acme",
    contract="WB-2025-007",
    contract_end="2026-12-31",
    location="B2 水泵房东侧",
    notes="变频器 2023 年更换",
)


async def test_a_record_is_stored_with_who_saved_it_and_read_back_whole(ops_store: OpsStore) -> None:
    store = EquipmentStore(ops_store)
    assert await store.get("pump-b2-1") is None

    saved = await store.save(PUMP, "eng-li", 1_000)

    assert saved == replace(PUMP, updated_by="eng-li", updated_at=1_000)
    assert saved.written
    assert await store.get("pump-b2-1") == saved


async def test_saving_again_replaces_every_field_emptied_ones_too(ops_store: OpsStore) -> None:
    store = EquipmentStore(ops_store)
    await store.save(PUMP, "eng-li", 1_000)

    changed = EquipmentRecord(device_id="pump-b2-1", model="CDLF 32-50", install_date="2021-06-01")
    await store.save(changed, "eng-wang", 2_000)

    kept = await store.get("pump-b2-1")
    assert kept == replace(changed, updated_by="eng-wang", updated_at=2_000)
    assert kept is not None and kept.serial_number == "" and kept.warranty_end is None


async def test_records_are_read_for_the_devices_asked_for(ops_store: OpsStore) -> None:
    store = EquipmentStore(ops_store)
    for device in ("pump-b2-1", "lift-a-1", "gone-device"):
        await store.save(replace(PUMP, device_id=device), "eng-li", 1_000)

    some = await store.of_devices({"lift-a-1", "pump-b2-1", "tank-a-1"})
    assert sorted(some) == ["lift-a-1", "pump-b2-1"]
    assert some["lift-a-1"].model == "CDLF 32-40"
    assert await store.of_devices(set()) == {}
    # a device the site file no longer has keeps its record: the archive outlives it
    assert list(await store.of_devices({"gone-device"})) == ["gone-device"]


async def test_two_first_saves_at_once_both_succeed_and_one_record_is_kept_whole(ops_store: OpsStore) -> None:
    store = EquipmentStore(ops_store)
    li = replace(PUMP, model="by li", serial_number="LI-1")
    wang = replace(PUMP, model="by wang", serial_number="WANG-1")

    saved = await asyncio.gather(store.save(li, "eng-li", 1_000), store.save(wang, "eng-wang", 1_001))

    kept = await store.get("pump-b2-1")
    assert kept in saved  # one engineer's record, never a mix of both
    assert (kept.model, kept.serial_number) in {("by li", "LI-1"), ("by wang", "WANG-1")}
