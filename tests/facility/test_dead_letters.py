"""Dead letters are evidence for a while, not an archive: each payload is cut to a few KiB (the
reason says so), the table keeps the newest rows up to a limit, and letters past the retention are
deleted, at start and hourly after; what goes is counted in /metrics and logged. On SQLite and on
PostgreSQL."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from api.metrics import ReadinessCollector
from facility.model import now_ns
from facility.mqtt import MqttClient
from facility.netutil import free_port
from facility.readiness import Readiness
from facility.records import DeadLetter
from facility.site import Stores
from facility.store.dead_letters import DeadLetterLimits
from facility.store.ops import OpsStore
from testsupport.ops_db import folder_ops
from testsupport.servers import Mosquitto
from testsupport.system import eventually, running_system, write_site

DAY = 86_400 * 1_000_000_000
KIB = 1024


def letter(ts: int, payload: str = "{}", key: str = "site/pump-1") -> DeadLetter:
    return DeadLetter(ts, "mqtt", key, "not JSON", payload)


@contextlib.asynccontextmanager
async def opened(url: str, limits: DeadLetterLimits) -> AsyncIterator[OpsStore]:
    store = OpsStore(url, site="t", dead_letters=limits)
    await store.start()
    try:
        yield store
    finally:
        await store.close()


def metrics(store: OpsStore) -> str:
    """The store's figures as Prometheus scrapes them from /metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ReadinessCollector(Readiness([store])))
    return generate_latest(registry).decode()


def test_the_site_file_sets_the_limits_and_keeps_a_month_of_at_most_10000_by_default() -> None:
    assert DeadLetterLimits.of(Stores()) == DeadLetterLimits(30 * DAY, 10_000, 4 * KIB)
    chosen = Stores.model_validate(
        {"dead_letter_retention": "7d", "dead_letter_rows": 500, "dead_letter_payload_kb": 1}
    )
    assert DeadLetterLimits.of(chosen) == DeadLetterLimits(7 * DAY, 500, KIB)


async def test_a_payload_is_cut_to_the_limit_and_its_reason_says_so(ops_url: str) -> None:
    async with opened(ops_url, DeadLetterLimits(30 * DAY, 100, 4 * KIB)) as store:
        huge = "€" * 3000  # 9000 bytes, three to a character: 4096 bytes would end inside one
        await store.letters.add([letter(now_ns(), huge), letter(now_ns(), "short")])
        short, cut = await store.letters.recent()
        assert (short.payload, short.reason) == ("short", "not JSON")
        assert cut.payload == "€" * 1365 and len(cut.payload.encode()) == 4095
        assert cut.reason == "not JSON (payload cut to its first 4095 bytes)"
        assert "facility_dead_letter_payloads_cut_total 1.0" in metrics(store)


async def test_every_letter_kept_is_counted_by_its_source(ops_url: str) -> None:
    async with opened(ops_url, DeadLetterLimits(30 * DAY, 100, 4 * KIB)) as store:
        modbus = DeadLetter(now_ns(), "modbus", "pump-1/outlet_pressure", "value out of range", "65535")
        await store.letters.add([letter(now_ns()), letter(now_ns()), modbus])
        scraped = metrics(store)
        assert 'facility_dead_letters_total{source="mqtt"} 2.0' in scraped
        assert 'facility_dead_letters_total{source="modbus"} 1.0' in scraped


async def test_beyond_the_row_limit_the_oldest_go_as_new_ones_come_counted_and_logged_once(
    ops_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with opened(ops_url, DeadLetterLimits(30 * DAY, 5, 4 * KIB)) as store:
        with caplog.at_level(logging.WARNING, logger="facility.store.dead_letters"):
            await store.letters.add([letter(now_ns(), key=f"k{i}") for i in range(3)])
            assert 'facility_dead_letters_pruned_total{reason="limit"} 0.0' in metrics(store)
            await store.letters.add([letter(now_ns(), key=f"k{i}") for i in range(3, 7)])
            await store.letters.add([letter(now_ns(), key=f"k{i}") for i in range(7, 9)])
        assert [d.key for d in await store.letters.recent()] == ["k8", "k7", "k6", "k5", "k4"]
        assert 'facility_dead_letters_pruned_total{reason="limit"} 4.0' in metrics(store)
        full = [r.getMessage() for r in caplog.records if "reached their limit" in r.getMessage()]
        assert full == [
            "ops store: the dead letters reached their limit of 5 rows (stores.dead_letter_rows); the oldest are "
            "deleted as new ones come, counted in facility_dead_letters_pruned_total"
        ]


async def test_letters_past_the_retention_are_deleted_counted_and_logged(
    ops_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with opened(ops_url, DeadLetterLimits(30 * DAY, 100, 4 * KIB)) as store:
        # Within the retention now (the watcher, pruning as it starts, keeps both); two days on, one is not.
        now = now_ns()
        await store.letters.add([letter(now - 29 * DAY, key="old"), letter(now - 27 * DAY, key="recent")])
        now += 2 * DAY
        with caplog.at_level(logging.INFO, logger="facility.store.dead_letters"):
            assert await store.letters.prune(now) == 1
        assert [d.key for d in await store.letters.recent()] == ["recent"]
        assert 'facility_dead_letters_pruned_total{reason="age"} 1.0' in metrics(store)
        assert "ops store: deleted 1 dead letters older than 30 days and 0 beyond the newest 100" in caplog.messages
        assert await store.letters.prune(now) == 0


async def test_a_store_deletes_the_letters_past_the_retention_once_it_has_started(ops_url: str) -> None:
    """Without new letters too: a quiet estate's old ones go by the watcher, at start and hourly."""
    first = OpsStore(ops_url, site="t")
    await first.start()
    now = now_ns()
    await first.letters.add([letter(now - 40 * DAY, key="old"), letter(now, key="new")])
    await first.close()

    again = OpsStore(ops_url, site="t")
    await again.start()
    try:

        async def only_new() -> bool:
            return [d.key for d in await again.letters.recent()] == ["new"]

        await eventually(only_new, timeout=10)
    finally:
        await again.close()


async def test_the_running_service_keeps_what_its_site_file_says(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """The limits reach the service as `facility run` starts it: a bad payload from the broker is
    kept cut to the site file's `dead_letter_payload_kb`, not to the default."""
    extra = "  - {id: lift-9, profile: elevator, mqtt: {topic: test/lifts/lift-9}}\n"
    site = write_site(tmp_path, mosquitto.url, free_port(), extra=extra)
    site.write_text(site.read_text().replace("stores: {", "stores: {dead_letter_payload_kb: 1, "))
    data = tmp_path / "data"
    async with running_system(site, data):
        publisher = MqttClient("127.0.0.1", mosquitto.port)
        store = folder_ops(data, site)
        await publisher.start()
        await store.start()
        try:
            publisher.publish("test/lifts/lift-9", b"{" + b"x" * 3000, qos=1)
            kept = await eventually(store.letters.recent, timeout=10)
        finally:
            await store.close()
            await publisher.stop()
    assert [len(d.payload.encode()) for d in kept] == [KIB]
    assert kept[0].reason.endswith(f"(payload cut to its first {KIB} bytes)")
