"""The company view (指挥中心): every estate's open emergencies, unacknowledged alarms, overdue tasks
and devices offline, and the month's figures, side by side.

The estates are those registered in the database (each estate's ops store registers it at start).
Each estate's figures are read in a view of that estate (`open_view(..., site=)`) by the queries
its own desk and monthly report use, so that the centre's numbers are the estate's own: the month's
alarms, mean time to acknowledge and deadlines kept are those of the estate's monthly summary.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import distinct, func, select

from facility.model import Priority
from facility.store.ops import OpsStore
from facility.store.reads import alarms, devices, tasks
from facility.store.reads.view import View, open_view
from facility.store.tables import AlarmRow, EstateRow


@dataclass(frozen=True)
class EstateFigures:
    """One estate as the command centre compares it with the others."""

    site: str
    name: str
    desk_url: str  # where its desk is reached; empty: not said
    open_alarms: int
    open_emergencies: int  # open alarms of emergency priority, active or not yet acknowledged
    unacknowledged: int
    overdue_tasks: int
    offline_devices: int  # devices with an active communication alarm
    out_of_service: int
    month_alarms: int  # activations this month
    month_mtta_ns: int | None  # mean time to acknowledge this month's activations
    month_on_time: float | None  # share of this month's team tasks finished by their due time


@dataclass(frozen=True)
class Estate:
    """An estate that uses the database, as its process registered it at its last start."""

    site: str
    name: str
    desk_url: str = ""


async def estates(ops: OpsStore, allowed: Collection[str] | None) -> list[Estate]:
    """The estates registered in the store that `allowed` holds (None: every estate), by site id."""
    query = select(EstateRow).order_by(EstateRow.site)
    if allowed is not None:
        query = query.where(EstateRow.site.in_(sorted(allowed)))
    async with ops.sessions() as session:
        return [Estate(row.site, row.name, row.desk_url) for row in await session.scalars(query)]


async def figures(
    ops: OpsStore, estate: Estate, communication: Collection[str], month: tuple[int, int], now: int
) -> EstateFigures:
    """The figures of `estate`: `communication` the ids of the rules that say a device is
    cut off, `month` the local month's [start, end) in UTC ns."""
    start, end = month
    async with open_view(ops, None, site=estate.site) as view:
        open_alarms, emergencies, unacknowledged, offline = await _open_counts(view, communication)
        acks = await alarms.acknowledge_times(view, start, end)
        teams = await tasks.deadlines(view, "team", start, end, now)
        acked = sum(a.acked for a in acks.values())
        met, missed = sum(d.met for d in teams.values()), sum(d.missed for d in teams.values())
        return EstateFigures(
            site=estate.site,
            name=estate.name,
            desk_url=estate.desk_url,
            open_alarms=open_alarms,
            open_emergencies=emergencies,
            unacknowledged=unacknowledged,
            overdue_tasks=len(await tasks.overdue_at(view, now)),
            offline_devices=offline,
            out_of_service=len(await devices.out_of_service(view, now)),
            month_alarms=sum((await alarms.by_device_and_priority(view, start, end)).values()),
            month_mtta_ns=sum(a.total_ns for a in acks.values()) // acked if acked else None,
            month_on_time=met / (met + missed) if met + missed else None,
        )


async def _open_counts(view: View, communication: Collection[str]) -> tuple[int, int, int, int]:
    """Open alarms, the emergencies among them, those not acknowledged, and the devices an active
    communication alarm says are cut off now (what `alarms.offline_at` reads from the history for a
    past moment, in one pass over the open alarms)."""
    emergency = AlarmRow.priority == Priority.EMERGENCY.value
    cut_off = AlarmRow.active.is_(True) & AlarmRow.rule_id.in_(sorted(communication))
    query = select(
        func.count(),
        func.count().filter(emergency),
        func.count().filter(AlarmRow.acknowledged.is_(False)),
        func.count(distinct(AlarmRow.device_id)).filter(cut_off),
    ).where(AlarmRow.is_open.is_(True))
    total, emergencies, unacknowledged, offline = (await view.session.execute(query)).one()
    return int(total), int(emergencies), int(unacknowledged), int(offline)
