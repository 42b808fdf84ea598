"""Two estates in one ops database (SQLite and PostgreSQL): each one's stores and reports see its own
records only, as though the other estate were not there, and the same rule on the same device id
may have an open alarm in both (facility.store.site_scope)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from facility.errors import NotFound
from facility.records import DeadLetter, TaskStatus
from facility.site import Site
from facility.store.dead_letters import DEAD_LETTER_LIMITS
from facility.store.equipment import EquipmentRecord, EquipmentStore
from facility.store.ops import OpsStore
from facility.store.reads import estates
from facility.store.reads.estates import Estate
from facility.store.schedules import Mark, ScheduleStore
from facility.store.tasks import TaskStore
from reports import briefing, handover, monthly
from reports.communication import communication_rules
from tests.reports.conftest import Seed, at, rules_of, schedules_of
from tests.reports.test_monthly import NOW, seed_november

LETTERS = replace(DEAD_LETTER_LIMITS, rows=5)  # small: the row limit of one estate must not prune the other's


async def reports_of(site: Site, ops: OpsStore) -> list[object]:
    """Everything the reports say of the estate at NOW, and its stores' lists."""
    rules, now = rules_of(site), at(NOW)
    tasks = TaskStore(ops)
    return [
        await monthly(site, ops, 2026, 11, now=now, rules=rules),
        await briefing(site, ops, None, now=now, rules=rules, schedules=schedules_of(site)),
        await handover(site, ops, at("2026-11-30 08:00"), now),
        await ops.pages.page(open_only=False, sort="-changed_at", limit=500),
        await ops.alarms.out_of_service(),
        await tasks.list(now, limit=500),
        await ops.audit.entries(500),
        await ops.letters.recent(500),
        await ScheduleStore(ops.sessions).marks(),
        await EquipmentStore(ops).of_devices(["pump-1", "pump-2"]),
    ]


async def fill(ops: OpsStore, who: str) -> None:
    """A month of alarms and tasks, a device out of service, an equipment record, a schedule's
    mark and dead letters, alike in both estates but for `who`."""
    await seed_november(Seed(ops))
    await ops.alarms.set_out_of_service("pump-2", True, f"{who}-eng", "10.0.0.2", f"valve swap at {who}", at(NOW))
    await EquipmentStore(ops).save(EquipmentRecord("pump-1", model=f"{who} CR 10-4"), f"{who}-eng", at(NOW))
    await ScheduleStore(ops.sessions).save([Mark("monthly-check", "pump-1", at(NOW), None)], at(NOW))
    await ops.letters.add([DeadLetter(at(NOW) + k, "mqtt", f"{who}/x", "not JSON", "{") for k in range(8)])


async def test_an_estate_sees_nothing_of_another_in_the_same_database(ops_url: str, site: Site) -> None:
    a = OpsStore(ops_url, site="estate", site_name="Garden", dead_letters=LETTERS)
    b = OpsStore(ops_url, site="other", dead_letters=LETTERS)
    await a.start()
    await b.start()
    try:
        await fill(a, "a")
        alone = await reports_of(site, a)
        await fill(b, "b")  # the same rules on the same device ids: open alarms on both sides
        await Seed(b).raise_("entrapment", "lift-1", "2026-12-01 22:00")
        other_task = await Seed(b).task("2026-12-01 21:00", "2026-12-01 22:00", device="pump-1", team="engineering")

        assert await reports_of(site, a) == alone  # nothing of B in any list or report of A
        b_alarm = (await b.pages.page(open_only=True, sort="-changed_at", limit=1))[0][0]
        with pytest.raises(NotFound):
            await a.alarms.acknowledge(int(b_alarm.id), "ana", "10.0.0.1", at(NOW))
        with pytest.raises(NotFound):
            await a.alarms.get_alarm(int(b_alarm.id))
        with pytest.raises(NotFound):
            await TaskStore(a).set_status(other_task, TaskStatus.CANCELLED, "li", "", at(NOW))
        assert (await b.alarms.get_alarm(int(b_alarm.id))).acknowledged is False
        assert len(await b.letters.recent(500)) == 5  # each estate's row limit, on its own letters
        assert {d.key for d in await a.letters.recent(500)} == {"a/x"}
        assert (await EquipmentStore(b).of_devices(["pump-1"]))["pump-1"].model == "b CR 10-4"

        assert await estates.estates(a, None) == [Estate("estate", "Garden"), Estate("other", "")]
        assert await estates.estates(a, {"estate"}) == [Estate("estate", "Garden")]
        comm = communication_rules(rules_of(site))
        month = (at("2026-12-01 00:00"), at("2027-01-01 00:00"))
        here = await estates.figures(a, Estate("estate", "Garden"), comm, month, at("2026-12-02 09:00"))
        there = await estates.figures(a, Estate("other", ""), comm, month, at("2026-12-02 09:00"))
        assert (here.offline_devices, here.out_of_service) == (1, 1)  # lift-1 cut off since 30 Nov; pump-2
        assert there == replace(
            here,
            site="other",
            name="",
            open_alarms=here.open_alarms + 1,
            open_emergencies=here.open_emergencies + 1,
            unacknowledged=here.unacknowledged + 1,
            overdue_tasks=here.overdue_tasks + 1,
            month_alarms=here.month_alarms + 1,
        )
    finally:
        await a.close()
        await b.close()
