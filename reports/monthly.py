"""The monthly report for managers: how fast alarms were acknowledged and faults repaired, whether
teams and vendors kept their time limits, how heavy the alarm load was against the ISA-18.2 and
EEMUA 191 benchmarks, which alarms went off most, and how available each device was.

Every figure over a month of alarms is computed in SQL by facility.store.reads (counts, sums, the
pairing of each activation with its acknowledgement by a window function); only per-group results
and the 10-minute window counts come back, and this module and its sections (alarm_rates,
service_levels) lay them out. For the month under way the figures run to now. docs/reports.md says
how each figure is computed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from facility.errors import Invalid
from facility.model import now_ns
from facility.records import CALL_OUTS, VendorSla
from facility.site import Site
from facility.store.ops import OpsStore
from facility.store.reads import alarms, tasks
from facility.store.reads.alarms import Acks, Frequent, Outage
from facility.store.reads.tasks import Deadlines, Repairs
from facility.store.reads.view import open_view
from facility.store.tasks import TaskStore
from reports import alarm_load
from reports.alarm_rates import Load, frequent_section, hours_section, load, load_section
from reports.communication import Watching, communication_rules
from reports.model import Column, Figure, Report, Row, Section, text
from reports.periods import NS, month_bounds
from reports.scope import Scope
from reports.service_levels import acks_section, deadline_section, repairs_section, responses_section

TOP = 10


@dataclass(frozen=True)
class _Found:
    """What the monthly report reads from the store."""

    counts: dict[tuple[str, str], int]
    windows: dict[int, int]
    frequent: list[Frequent]
    chattering: int
    acks: dict[str, Acks]
    repairs: dict[str, Repairs]
    teams: dict[str, Deadlines]
    vendors: dict[str, Deadlines]
    cut_off: list[Outage]
    responses: dict[str, VendorSla]


async def monthly(
    site: Site,
    ops: OpsStore,
    year: int,
    month: int,
    devices: Iterable[str] | None = None,
    *,
    now: int | None = None,
    rules: Iterable[Watching],
) -> Report:
    """The report on a local calendar month; `rules` say which alarms cut a device off. Invalid
    (naming `month`) for a month that does not exist or has not begun."""
    scope = Scope(site, devices)
    now = now_ns() if now is None else now
    try:
        start, end = month_bounds(year, month, scope.zone)
    except ValueError:
        raise Invalid(f"month: {year}-{month:02d} is not a month", field="month", where="query") from None
    span = min(end, now) - start  # how much of the month has passed
    if span <= 0:
        raise Invalid(f"month: {year}-{month:02d} has not begun", field="month", where="query")
    found = await _read(site, ops, scope, communication_rules(rules), (start, end, span, now))
    label = f"{year}-{month:02d}"
    report = scope.report("monthly", text(f"月度报告 {label}", f"Monthly report {label}"), start, end, now)
    total = sum(found.counts.values())
    rates = load(found.windows, total, span)
    availability = _availability(scope, found.cut_off, start, start + span)
    report.sections += [
        _summary(found, rates, total, [share for share, _ in availability]),
        load_section(rates, total, found.frequent, found.chattering, found.counts),
        hours_section(scope, found.windows, start, span),
        alarm_load.by_system(scope, found.counts),
        acks_section(found.acks),
        repairs_section(found.repairs),
        deadline_section(scope, "sla_teams", text("班组按期完成", "Deadlines kept per team"), "team", found.teams),
        deadline_section(
            scope, "sla_vendors", text("维保单位按期完成", "Deadlines kept per vendor"), "vendor", found.vendors
        ),
        responses_section(scope, found.responses),
        frequent_section(scope, found.frequent),
        _availability_section([row for _, row in availability]),
    ]
    return report


async def _read(
    site: Site, ops: OpsStore, scope: Scope, comm: frozenset[str], period: tuple[int, int, int, int]
) -> _Found:
    """The month's records: `period` is (start, end, the span passed, now)."""
    start, end, span, now = period
    limits = {v.id: round(v.arrive_within * NS) for v in site.vendors if v.arrive_within is not None}
    async with open_view(ops, scope.limit) as view:
        counts = await alarms.by_device_and_priority(view, start, end)
        windows = await alarms.per_window(view, start, end)
        frequent = await alarms.most_frequent(view, start, end, TOP)
        chattering = await alarms.chattering(view, start, end)
        acks = await alarms.acknowledge_times(view, start, end)
        repairs = await tasks.repair_times(view, start, end)
        teams = await tasks.deadlines(view, "team", start, end, now)
        vendors = await tasks.deadlines(view, "vendor", start, end, now)
        cut_off = await alarms.outages(view, comm, start, start + span)
    responses = await TaskStore(ops).vendor_sla(limits, start, end, now, devices=scope.limit)
    return _Found(counts, windows, frequent, chattering, acks, repairs, teams, vendors, cut_off, responses)


def _summary(found: _Found, rates: Load, total: int, shares: list[float]) -> Section:
    acked = sum(a.acked for a in found.acks.values())
    ack_ns = sum(a.total_ns for a in found.acks.values())
    call_outs = [r for kind, r in found.repairs.items() if kind in {k.value for k in CALL_OUTS}]
    repaired = sum(r.resolved for r in call_outs)
    repair_ns = sum(r.total_ns for r in call_outs)
    met, missed = sum(d.met for d in found.teams.values()), sum(d.missed for d in found.teams.values())
    return Section(
        "summary",
        text("概要", "Summary"),
        figures=[
            Figure("alarms", text("报警次数", "Alarms raised"), total),
            Figure(
                "per_10_min", text("平均每 10 分钟报警", "Alarms per 10 minutes, average"), rates.per_10_min, "number"
            ),
            Figure("peak_10_min", text("10 分钟内报警峰值", "Alarms in the busiest 10 minutes"), rates.peak),
            Figure(
                "flood_share",
                text("报警风暴时段占比", "Share of 10-minute windows in flood"),
                rates.flood_share,
                "ratio",
            ),
            Figure(
                "mtta",
                text("平均确认时间", "Mean time to acknowledge"),
                ack_ns // acked if acked else None,
                "duration",
            ),
            Figure(
                "mttr",
                text("平均修复时间（维修类工单）", "Mean time to repair (call-outs)"),
                repair_ns // repaired if repaired else None,
                "duration",
            ),
            Figure(
                "sla",
                text("工单按期完成率", "Tasks finished on time"),
                met / (met + missed) if met + missed else None,
                "ratio",
            ),
            Figure(
                "availability",
                text("设备平均可用率", "Mean device availability"),
                sum(shares) / len(shares) if shares else None,
                "ratio",
            ),
        ],
    )


def _availability(scope: Scope, cut_off: list[Outage], start: int, end: int) -> list[tuple[float, Row]]:
    """Per device in view, the least available first: the share of [start, end) it was not cut off
    (overlapping outages of two rules counted once), and its row."""
    spans: dict[str, list[tuple[int, int]]] = {}
    for o in cut_off:
        spans.setdefault(o.device, []).append((max(o.start, start), min(o.end if o.end is not None else end, end)))
    rows: list[tuple[float, str, Row]] = []
    for device in scope.devices:
        offline, reach = 0, start
        for a, b in sorted(spans.get(device.id, [])):
            a = max(a, reach)
            if b > a:
                offline += b - a
                reach = b
        share = 1 - offline / (end - start)
        row: Row = {
            "device": device.name or device.id,
            "building": device.location.building,
            "system": scope.site.system_of(device),
            "outages": len(spans.get(device.id, [])),
            "offline": offline,
            "availability": share,
        }
        rows.append((share, device.id, row))
    return [(share, row) for share, _, row in sorted(rows, key=lambda r: r[:2])]


def _availability_section(rows: list[Row]) -> Section:
    return Section(
        "availability",
        text("设备可用率", "Device availability"),
        columns=[
            Column("device", text("设备", "Device")),
            Column("building", text("楼栋", "Building")),
            Column("system", text("系统", "System"), "word"),
            Column("outages", text("中断次数", "Outages"), "count"),
            Column("offline", text("中断时长", "Time offline"), "duration"),
            Column("availability", text("可用率", "Availability"), "ratio"),
        ],
        rows=rows,
        note=text(
            "可用率 = 1 − 通讯类报警的报警中时长 ÷ 统计时长（本月已过时长）",
            "Availability = 1 − time under an active communication alarm ÷ the time covered (the month so far)",
        ),
    )
