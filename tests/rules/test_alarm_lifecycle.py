"""The alarm service carries alarms through their ISA-18.2 lifecycle over time: shelves expire by
themselves, unacknowledged emergency and high alarms escalate once, chattering and floods are
noticed and end; suppression and out-of-service are kept visible. The clock is injected, so hours
pass in milliseconds; both ops databases are used."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from pathlib import Path

import pytest

from facility.bus import Event, LocalBus
from facility.errors import NotFound
from facility.model import Priority
from facility.site import Site, load_site
from facility.store.alarms import ActionRefused
from facility.store.ops import OpsStore
from rules.alarms import AlarmService
from rules.engine import Change
from rules.flood import Flood, judge
from rules.ruleset import Rule, load_rules
from tests.rules.conftest import RULES

S = 1_000_000_000
MIN = 60 * S
HOUR = 60 * MIN
T = 1_700_000_000 * S
LOW = {"outlet_pressure": 0.2}


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def estate(tmp_path: Path) -> Site:
    """Twelve booster pumps, enough for a flood of alarms."""
    (tmp_path / "rules.yaml").write_text(RULES)
    pumps = "".join(
        f"  - {{id: pump-{k}, profile: booster_pump, modbus: {{port: 1502, unit: {k}}}}}\n" for k in range(1, 13)
    )
    path = tmp_path / "site.yaml"
    path.write_text(f"site: {{id: t}}\nuse_rule_library: false\nrules: [rules.yaml]\ndevices:\n{pumps}")
    return load_site(path)


@pytest.fixture
def store(ops_store: OpsStore) -> OpsStore:
    return ops_store


def low_pressure(site: Site) -> Rule:
    (rule,) = load_rules(site)
    return rule


async def take(events: asyncio.Queue[Event], n: int, timeout: float = 10) -> list[Event]:
    """The next `n` events, waiting for each."""
    return [await asyncio.wait_for(events.get(), timeout) for _ in range(n)]


def pending(events: asyncio.Queue[Event]) -> list[Event]:
    """Events already published and not yet taken."""
    out = []
    while not events.empty():
        out.append(events.get_nowait())
    return out


async def test_a_shelf_expires_by_itself_and_the_still_unacknowledged_alarm_escalates_once(
    estate: Site, store: OpsStore
) -> None:
    bus, clock = LocalBus(), Clock(T)
    service = AlarmService(estate, store, bus, clock=clock, check_every_s=0.01)
    with bus.subscribe() as events:
        task = asyncio.create_task(service.run())
        await service.record(Change(low_pressure(estate), "pump-1", True, T, LOW))
        (raised,) = await take(events, 1)
        alarm_id = raised.data["id"]
        await service.shelve(alarm_id, "duty", "10.0.0.5", "pump under repair", T + HOUR)
        (shelved,) = await take(events, 1)
        assert shelved.data["state"] == "shelved" and shelved.data["shelved_by"] == "duty"

        clock.now = T + HOUR  # shelved all along: no escalation while it was hidden
        unshelved, escalated, escalation = await take(events, 3)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert (unshelved.kind, unshelved.data["state"], unshelved.data["shelved"]) == (
            "alarm",
            "unacknowledged",
            False,
        )
        assert (escalated.kind, escalated.data["escalated"]) == ("alarm", True)
        assert (escalation.kind, escalation.data["id"], escalation.data["priority"]) == ("escalation", alarm_id, "high")

        clock.now = T + 2 * HOUR
        await service.check()
        assert pending(events) == []  # escalated once only
    detail = await store.alarms.get_alarm(alarm_id)
    assert detail is not None
    assert [(h.action, h.actor) for h in detail.history] == [
        ("raised", "rules"),
        ("shelved", "duty"),
        ("unshelved", "system"),
        ("escalated", "system"),
    ]


async def test_an_emergency_alarm_escalates_after_its_own_limit(estate: Site, store: OpsStore) -> None:
    rule = low_pressure(estate)
    emergency = replace(rule, spec=rule.spec.model_copy(update={"priority": Priority.EMERGENCY}))
    bus, clock = LocalBus(), Clock(T)
    service = AlarmService(estate, store, bus, clock=clock, escalate_emergency_ns=30 * S)
    with bus.subscribe() as events:
        await service.record(Change(emergency, "pump-1", True, T, LOW))
        clock.now = T + 30 * S - 1
        await service.check()
        assert [e.kind for e in pending(events)] == ["alarm"]
        clock.now = T + 30 * S
        await service.check()
        assert [(e.kind, e.data["escalated"]) for e in pending(events)] == [("alarm", True), ("escalation", True)]


async def test_a_flood_starts_past_ten_alarms_in_ten_minutes_and_ends_when_few_remain(
    estate: Site, store: OpsStore
) -> None:
    rule, bus, clock = low_pressure(estate), LocalBus(), Clock(T)
    service = AlarmService(estate, store, bus, clock=clock)
    with bus.subscribe() as events:
        await service.record(Change(rule, "pump-12", True, T, LOW, suppressed=True))  # not in front of staff
        for k in range(10):
            await service.record(Change(rule, f"pump-{k + 1}", True, T + k * S, LOW))
        assert [e.kind for e in pending(events)] == ["alarm"] * 11
        assert await service.flood_state() == {"active": False}

        await service.record(Change(rule, "pump-11", True, T + 10 * S, LOW))
        started = {"active": True, "count": 11, "since": T + 10 * S}
        assert [(e.kind, e.data) for e in pending(events)][1:] == [("flood", started)]
        clock.now = T + 10 * S
        assert await service.flood_state() == started

        clock.now = T + 10 * MIN + 5 * S  # five raised within the last ten minutes: still a flood
        await service.check()
        assert [e for e in pending(events) if e.kind == "flood"] == []
        assert await service.flood_state() == {"active": True, "count": 5, "since": T + 10 * S}
        clock.now = T + 10 * MIN + 6 * S
        await service.check()
        assert [e.data for e in pending(events) if e.kind == "flood"] == [{"active": False}]
        assert await service.flood_state() == {"active": False}


async def test_the_flood_state_is_the_stores_so_another_process_reads_it_and_a_restart_ends_it(
    estate: Site, store: OpsStore
) -> None:
    rule, bus, clock = low_pressure(estate), LocalBus(), Clock(T + 10 * S)
    worker = AlarmService(estate, store, bus, clock=clock)
    for k in range(11):
        await worker.record(Change(rule, f"pump-{k + 1}", True, T + k * S, LOW))
    started = {"active": True, "count": 11, "since": T + 10 * S}
    other = AlarmService(estate, store, LocalBus(), clock=clock)  # as the API in a process of its own
    assert await other.flood_state() == started

    restarted_bus = LocalBus()
    restarted = AlarmService(estate, store, restarted_bus, clock=clock)  # the worker after a restart
    with restarted_bus.subscribe() as events:
        await restarted.check()
        assert [e for e in pending(events) if e.kind == "flood"] == []  # told before the restart
        clock.now = T + 10 * MIN + 6 * S
        await restarted.check()
        assert [e.data for e in pending(events) if e.kind == "flood"] == [{"active": False}]
    assert await other.flood_state() == {"active": False}


def test_a_flood_is_judged_by_replaying_the_activations() -> None:
    raised = [T + k * S for k in range(11)]
    assert judge(raised[:10], T + 9 * S) is None
    assert judge(raised, T + 10 * S) == Flood(11, T + 10 * S)
    assert judge(raised, T + 10 * MIN + 5 * S) == Flood(5, T + 10 * S)  # five left: still a flood
    assert judge(raised, T + 10 * MIN + 6 * S) is None
    again = [*raised, *(T + 11 * MIN + k * S for k in range(11))]  # a second flood, after the first ended
    assert judge(again, T + 11 * MIN + 10 * S) == Flood(11, T + 11 * MIN + 10 * S)


async def test_chattering_is_announced_and_ends_after_ten_quiet_minutes(estate: Site, store: OpsStore) -> None:
    rule, bus, clock = low_pressure(estate), LocalBus(), Clock(T)
    service = AlarmService(estate, store, bus, clock=clock, escalate_high_ns=HOUR)  # only chatter changes here
    with bus.subscribe() as events:
        for k in range(6):
            await service.record(Change(rule, "pump-1", True, T + k * MIN, LOW))
            await service.record(Change(rule, "pump-1", False, T + k * MIN + S, {"outlet_pressure": 0.35}))
        announced = pending(events)
        assert [e.data["chattering"] for e in announced] == [False] * 10 + [True, True]
        clock.now = T + 15 * MIN
        await service.check()
        (quiet,) = pending(events)
        assert (quiet.kind, quiet.data["chattering"], quiet.data["id"]) == ("alarm", False, announced[-1].data["id"])


async def test_suppressed_and_out_of_service_alarms_are_kept_and_shown_as_such(estate: Site, store: OpsStore) -> None:
    rule, bus, clock = low_pressure(estate), LocalBus(), Clock(T)
    service = AlarmService(estate, store, bus, clock=clock)
    with bus.subscribe() as events:
        await service.record(Change(rule, "pump-1", True, T, LOW, suppressed=True))
        await service.record(Change(rule, "pump-1", True, T + S, LOW, suppressed=False))
        suppressed, revealed = pending(events)
        assert (suppressed.data["state"], suppressed.data["suppressed"]) == ("suppressed", True)
        assert (revealed.data["id"], revealed.data["state"]) == (suppressed.data["id"], "unacknowledged")

        with pytest.raises(ActionRefused, match="no device 'pump-99'"):
            await service.set_out_of_service("pump-99", True, "eng", "10.0.0.9", "seal replacement")
        (flagged,) = await service.set_out_of_service("pump-1", True, "eng", "10.0.0.9", "seal replacement")
        assert await service.set_out_of_service("pump-2", True, "eng", "10.0.0.9", "valve work") == []
        await service.record(Change(rule, "pump-2", True, T + 2 * S, LOW))
        assert [(e.data["device"], e.data["state"]) for e in pending(events)] == [
            ("pump-1", "out_of_service"),
            ("pump-2", "out_of_service"),  # raised during maintenance: recorded, carrying the flag
        ]
        assert flagged.out_of_service and flagged.id == suppressed.data["id"]


async def test_operator_actions_are_recorded_announced_or_refused(estate: Site, store: OpsStore) -> None:
    rule, bus, clock = low_pressure(estate), LocalBus(), Clock(T)
    service = AlarmService(estate, store, bus, clock=clock)
    with bus.subscribe() as events:
        await service.record(Change(rule, "pump-1", True, T, LOW))
        (raised,) = pending(events)
        alarm_id = raised.data["id"]
        clock.now = T + MIN

        with pytest.raises(ActionRefused, match="24 h at most"):
            await service.shelve(alarm_id, "duty", "10.0.0.5", "repair", T + MIN + 25 * HOUR)
        with pytest.raises(ActionRefused, match="not in the future"):
            await service.shelve(alarm_id, "duty", "10.0.0.5", "repair", T)
        with pytest.raises(NotFound, match="no alarm "):
            await service.shelve(alarm_id + 1, "duty", "10.0.0.5", "repair", T + HOUR)
        with pytest.raises(NotFound, match="no alarm "):
            await service.comment(alarm_id + 1, "duty", "10.0.0.5", "hello")
        assert pending(events) == []  # nothing refused is announced

        acked = await service.acknowledge(alarm_id, "duty", "10.0.0.5")
        commented = await service.comment(alarm_id, "duty", "10.0.0.5", "维保已到场 vendor on site")
        await service.shelve(alarm_id, "duty", "10.0.0.5", "repair", T + HOUR)
        unshelved = await service.unshelve(alarm_id, "lead", "10.0.0.7")
        assert acked is not None and acked.acked_at == T + MIN
        assert commented is not None and unshelved is not None and unshelved.state == "acknowledged"
        assert [e.data["state"] for e in pending(events)] == ["acknowledged", "acknowledged", "shelved", "acknowledged"]
    detail = await store.alarms.get_alarm(alarm_id)
    assert detail is not None
    assert [(h.action, h.actor, h.source, h.ts) for h in detail.history][1:] == [
        ("acknowledged", "duty", "10.0.0.5", T + MIN),
        ("comment", "duty", "10.0.0.5", T + MIN),
        ("shelved", "duty", "10.0.0.5", T + MIN),
        ("unshelved", "lead", "10.0.0.7", T + MIN),
    ]
