"""The monthly report: every figure worked out by hand from a month seeded at known times."""

from __future__ import annotations

import pytest

from facility.records import TaskKind, TaskStatus
from facility.site import Site
from facility.store.ops import OpsStore
from facility.store.tasks import TaskStore
from reports import Report, monthly
from reports.communication import communication_rules
from reports.model import Row
from tests.reports.conftest import HOUR, MINUTE, Seed, at, rules_of

NOW = "2026-12-02 09:00"
MONTH_NS = 30 * 24 * HOUR
B1 = {"pump-1", "lift-1", "fire-1"}


async def seed_november(seed: Seed) -> None:
    # Acknowledged alarms: 4 min, 1 min, and 6 min after the second activation of a third.
    a = await seed.raise_("low-pressure", "pump-1", "2026-11-02 10:00")
    await seed.ack(a, "2026-11-02 10:04")
    await seed.clear("low-pressure", "pump-1", "2026-11-02 10:30")
    b = await seed.raise_("entrapment", "lift-1", "2026-11-03 12:00")
    await seed.ack(b, "2026-11-03 12:01")
    await seed.clear("entrapment", "lift-1", "2026-11-03 12:20")
    c = await seed.raise_("low-pressure", "pump-2", "2026-11-04 08:00")
    await seed.clear("low-pressure", "pump-2", "2026-11-04 08:05")  # not acknowledged before it comes back
    assert await seed.raise_("low-pressure", "pump-2", "2026-11-04 08:10") == c
    await seed.ack(c, "2026-11-04 08:16")
    await seed.clear("low-pressure", "pump-2", "2026-11-04 08:20")
    # A flood: the sump's float chatters 12 times within one 10-minute window, never acknowledged.
    for k in range(12):
        await seed.raise_("sump-high", "sump-1", f"2026-11-10 09:{k // 2:02d}:{k % 2 * 30:02d}")
        await seed.clear("sump-high", "sump-1", f"2026-11-10 09:{k // 2:02d}:{k % 2 * 30 + 10:02d}")
    # Communication lost: 6 h of November for the sump (since October), 12 h for the fire panel,
    # and the lift from 18:00 on the last day to the end of the month and beyond.
    await seed.raise_("device-offline", "sump-1", "2026-10-31 12:00")
    await seed.clear("device-offline", "sump-1", "2026-11-01 06:00")
    await seed.raise_("device-offline", "fire-1", "2026-11-20 00:00")
    await seed.clear("device-offline", "fire-1", "2026-11-20 12:00")
    await seed.raise_("device-offline", "lift-1", "2026-11-30 18:00")

    t1 = await seed.task("2026-11-02 10:01", "2026-11-02 14:01", device="pump-1", team="engineering")
    await seed.work(t1, "2026-11-02 11:00", "2026-11-02 12:01")  # 2 h, on time
    t2 = await seed.task(
        "2026-11-03 12:01", "2026-11-03 12:31", kind=TaskKind.EMERGENCY, device="lift-1", vendor="otis"
    )
    await seed.work(t2, "2026-11-03 12:21", "2026-11-03 13:01")  # on site in 20 min; resolved in 1 h, late
    t3 = await seed.task("2026-11-05 09:00", "2026-11-05 13:00", device="lift-1", vendor="otis")
    await seed.work(t3, "2026-11-05 10:00", "2026-11-05 12:00")  # on site in 60 min; resolved in 3 h, on time
    await seed.task("2026-11-06 09:00", "2026-11-06 17:00", kind=TaskKind.COMPLAINT, team="customer-service")  # late
    t5 = await seed.task(
        "2026-11-07 09:00", "2026-11-07 13:00", kind=TaskKind.PREVENTIVE, device="pump-2", team="engineering"
    )
    await seed.work(t5, "2026-11-07 09:30", "2026-11-07 10:00")  # 1 h, on time
    await seed.task("2026-11-29 09:00", "2026-12-01 09:00", device="pump-1", team="engineering")  # due next month
    t7 = await seed.task("2026-11-08 09:00", "2026-11-08 12:00", device="pump-2", team="engineering")
    await seed.move(t7, "2026-11-08 10:00", TaskStatus.CANCELLED)  # left out
    await seed.task("2026-11-28 10:00", "2026-11-28 10:30", kind=TaskKind.EMERGENCY, device="lift-1", vendor="otis")


def figures(report: Report, section: str) -> dict[str, object]:
    return {f.key: f.value for f in report.section(section).figures}


def rows(report: Report, section: str, key: str) -> dict[object, Row]:
    return {row[key]: row for row in report.section(section).rows}


async def test_the_monthly_figures_are_the_ones_worked_out_by_hand(site: Site, store: OpsStore, seed: Seed) -> None:
    await seed_november(seed)
    report = await monthly(site, store, 2026, 11, now=at(NOW), rules=rules_of(site))

    assert (report.start, report.end) == (at("2026-11-01 00:00"), at("2026-12-01 00:00"))
    summary = figures(report, "summary")
    assert summary["alarms"] == 18  # 1 + 1 + 2 + 12 + fire panel and lift offline; the sump's began in October
    assert summary["mtta"] == (4 + 1 + 6) * MINUTE // 3
    assert summary["mttr"] == (2 + 1 + 3) * HOUR // 3  # repair and emergency; the preventive one is not a repair
    assert summary["sla"] == 3 / 6
    assert summary["peak_10_min"] == 12

    load = figures(report, "alarm_load")
    assert load["per_10_min"] == 18 / 4320
    assert load["per_hour"] == 18 / 720
    assert load["flood_windows"] == 1
    assert load["flood_share"] == 1 / 4320
    assert load["busy_hour_share"] == 0
    assert load["chattering"] == 1
    assert load["top_share"] == 1.0  # only six alarms went off at all
    assert (load["low_share"], load["medium_share"], load["high_share"], load["emergency_share"]) == (
        12 / 18,
        0,
        5 / 18,
        1 / 18,
    )
    judged = {f.key: f.ok for f in report.section("alarm_load").figures}
    assert judged["per_10_min"] is True and judged["peak_10_min"] is False and judged["flood_share"] is True
    assert judged["chattering"] is False

    hours = rows(report, "alarms_by_hour", "hour")
    assert {h: r["alarms"] for h, r in hours.items() if r["alarms"]} == {
        "00": 1,
        "08": 2,
        "09": 12,
        "10": 1,
        "12": 1,
        "18": 1,
    }
    systems = rows(report, "alarms_by_system", "system")
    assert systems["water_supply"]["high"] == 3 and systems["drainage"]["low"] == 12
    assert systems["elevators"]["emergency"] == 1 and systems["elevators"]["high"] == 1
    assert systems["fire"]["total"] == 1
    assert set(systems) == {"water_supply", "elevators", "fire", "drainage"}  # those of the site's devices

    acks = rows(report, "acknowledge", "priority")
    assert acks["high"] == {"priority": "high", "activations": 5, "acked": 2, "unacked": 3, "mtta": 5 * MINUTE}
    assert acks["emergency"]["mtta"] == MINUTE
    assert acks["low"]["acked"] == 0 and acks["low"]["mtta"] is None

    repairs = rows(report, "repair", "kind")
    assert repairs["repair"]["resolved"] == 2 and repairs["repair"]["mttr"] == 5 * HOUR // 2
    assert repairs["preventive"]["mttr"] == HOUR

    teams = rows(report, "sla_teams", "team")
    assert (teams["engineering"]["due"], teams["engineering"]["met"], teams["engineering"]["compliance"]) == (2, 2, 1.0)
    assert teams["customer-service"]["missed"] == 1 and teams["customer-service"]["compliance"] == 0.0
    vendors = rows(report, "sla_vendors", "vendor")
    assert (vendors["Otis service"]["met"], vendors["Otis service"]["missed"]) == (1, 2)

    response = rows(report, "vendor_response", "vendor")["Otis service"]
    assert response["limit"] == 30 * MINUTE
    assert (response["tasks"], response["met"], response["missed"], response["no_show"]) == (3, 1, 1, 1)
    assert response["compliance"] == 1 / 3
    assert (response["mean"], response["worst"]) == (40 * MINUTE, 60 * MINUTE)

    frequent = report.section("frequent").rows
    assert frequent[0] == {
        "rule": "sump-high",
        "device": "Sump 1",
        "title": frequent[0]["title"],
        "activations": 12,
        "chattering": True,
    }
    assert frequent[1]["activations"] == 2 and len(frequent) == 6

    availability = rows(report, "availability", "device")
    assert availability["Fire panel"]["offline"] == 12 * HOUR
    assert availability["Fire panel"]["availability"] == 1 - 12 * HOUR / MONTH_NS
    assert availability["Sump 1"]["offline"] == 6 * HOUR  # from the start of the month
    assert availability["Lift 1"]["offline"] == 6 * HOUR  # to its end
    assert availability["Pump 1"]["availability"] == 1.0
    assert report.section("availability").rows[0]["device"] == "Fire panel"  # the least available first
    assert summary["availability"] == pytest.approx(1 - (12 + 6 + 6) * HOUR / MONTH_NS / 5)


async def test_vendor_response_is_measured_as_the_task_store_measures_it(
    site: Site, store: OpsStore, seed: Seed
) -> None:
    await seed_november(seed)
    report = await monthly(site, store, 2026, 11, now=at(NOW), rules=rules_of(site))
    expected = (
        await TaskStore(store).vendor_sla(
            {"otis": 30 * MINUTE}, at("2026-11-01 00:00"), at("2026-12-01 00:00"), at(NOW)
        )
    )["otis"]
    row = report.section("vendor_response").rows[0]
    assert (row["tasks"], row["met"], row["missed"], row["no_show"], row["waiting"], row["mean"], row["worst"]) == (
        expected.tasks,
        expected.met,
        expected.missed,
        expected.open_past_limit,
        expected.waiting,
        expected.mean_response_ns,
        expected.worst_response_ns,
    )


async def test_a_report_limited_to_buildings_counts_only_their_devices_and_site_wide_tasks(
    site: Site, store: OpsStore, seed: Seed
) -> None:
    await seed_november(seed)
    report = await monthly(site, store, 2026, 11, sorted(site.devices_in(["B1"])), now=at(NOW), rules=rules_of(site))
    assert report.devices == sorted(B1) and report.buildings == ["B1"]
    summary = figures(report, "summary")
    assert summary["alarms"] == 4  # pump-1, lift-1 trapped and offline, fire panel offline
    assert summary["mtta"] == (4 + 1) * MINUTE // 2
    assert {r["device"] for r in report.section("availability").rows} == {"Pump 1", "Lift 1", "Fire panel"}
    teams = rows(report, "sla_teams", "team")
    assert teams["engineering"]["due"] == 1  # pump-2's preventive task is B2's
    assert teams["customer-service"]["due"] == 1  # a complaint of no device is site-wide: always in
    assert {r["device"] for r in report.section("frequent").rows} == {"Pump 1", "Lift 1", "Fire panel"}


async def test_the_month_under_way_runs_to_now_and_a_month_not_begun_is_refused(
    site: Site, store: OpsStore, seed: Seed
) -> None:
    await seed.raise_("low-pressure", "pump-1", "2026-12-01 06:00")
    report = await monthly(site, store, 2026, 12, now=at("2026-12-01 12:00"), rules=rules_of(site))
    load = figures(report, "alarm_load")
    assert load["per_hour"] == 1 / 12  # 12 hours of December so far
    assert figures(report, "summary")["availability"] == 1.0
    for year, month, message in ((2026, 13, "2026-13 is not a month"), (2027, 1, "2027-01 has not begun")):
        try:
            await monthly(site, store, year, month, now=at("2026-12-01 12:00"), rules=rules_of(site))
        except ValueError as exc:
            assert str(exc) == f"month: {message}"
        else:
            raise AssertionError(f"{year}-{month} was accepted")


def test_a_communication_rule_is_one_whose_condition_calls_offline(site: Site) -> None:
    assert communication_rules(rules_of(site)) == frozenset({"device-offline"})
