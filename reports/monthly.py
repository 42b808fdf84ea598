"""The monthly report for managers: how fast alarms were acknowledged and faults repaired, whether
teams and vendors kept their time limits, how heavy the alarm load was against the ISA-18.2 and
EEMUA 191 benchmarks, which alarms went off most, and how available each device was.

Every figure over a month of alarms is computed in SQL (counts, sums, the pairing of each
activation with its acknowledgement by a window function); only per-group results and the 10-minute
window counts come back. For the month under way the figures run to now. docs/reports.md says how
each figure is computed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from facility.model import Priority, now_ns
from facility.site import Site
from facility.store.ops import ACTIVATIONS, AlarmHistoryRow, AlarmRow, OpsStore
from facility.store.tasks import CALL_OUTS, Bilingual, TaskKind, TaskRow, TaskStatus, TaskStore, VendorSla
from reports import alarm_load
from reports.alarm_load import WINDOW_NS
from reports.communication import Outage, communication_rules, outages
from reports.model import Chart, Column, Figure, Report, Row, Section, text
from reports.periods import NS, month_bounds
from reports.scope import Scope
from rules.ruleset import Rule

HOUR_NS = 3600 * NS
FLOOD = 10  # more alarms than this in 10 minutes is a flood (ISA-18.2, EEMUA 191)
BUSY_HOUR = 30  # ISA-18.2: share of hours with more than 30 alarms, about 1% at most
TOP = 10
NO_TEAM = text("未指定班组", "no team")


async def monthly(
    site: Site,
    ops: OpsStore,
    year: int,
    month: int,
    devices: Iterable[str] | None = None,
    *,
    now: int | None = None,
    rules: Iterable[Rule] | None = None,
) -> Report:
    """The report on a local calendar month. ValueError (naming `month`) for a month that does not
    exist or has not begun."""
    scope = Scope(site, devices)
    now = now_ns() if now is None else now
    try:
        start, end = month_bounds(year, month, scope.zone)
    except ValueError:
        raise ValueError(f"month: {year}-{month:02d} is not a month") from None
    span = min(end, now) - start  # how much of the month has passed
    if span <= 0:
        raise ValueError(f"month: {year}-{month:02d} has not begun")
    comm = communication_rules(site, rules)
    limits = {v.id: round(v.arrive_within * NS) for v in site.vendors if v.arrive_within is not None}
    async with ops.sessions() as s:
        counts = await alarm_load.by_device_and_priority(s, scope, start, end)
        windows = await alarm_load.per_window(s, scope, start, end)
        frequent = await alarm_load.most_frequent(s, scope, start, end, TOP)
        chattering = await _chattering(s, scope, start, end)
        acks = await _acknowledge_times(s, scope, start, end)
        repairs = await _repair_times(s, scope, start, end)
        teams = await _deadlines(s, scope, TaskRow.team, start, end, now)
        vendors = await _deadlines(s, scope, TaskRow.vendor, start, end, now)
        cut_off = await outages(s, comm, scope, start, start + span)
    responses = await TaskStore(ops).vendor_sla(limits, start, end, now, devices=scope.limit)

    label = f"{year}-{month:02d}"
    report = scope.report("monthly", text(f"月度报告 {label}", f"Monthly report {label}"), start, end, now)
    total = sum(counts.values())
    load = _load(windows, total, span)
    availability = _availability(scope, cut_off, start, start + span)
    acked = sum(a.acked for a in acks.values())
    ack_ns = sum(a.total_ns for a in acks.values())
    call_outs = [r for kind, r in repairs.items() if kind in {k.value for k in CALL_OUTS}]
    repaired = sum(r.resolved for r in call_outs)
    repair_ns = sum(r.total_ns for r in call_outs)
    met, missed = sum(d.met for d in teams.values()), sum(d.missed for d in teams.values())
    shares = [share for share, _ in availability]

    report.sections.append(
        Section(
            "summary",
            text("概要", "Summary"),
            figures=[
                Figure("alarms", text("报警次数", "Alarms raised"), total),
                Figure(
                    "per_10_min",
                    text("平均每 10 分钟报警", "Alarms per 10 minutes, average"),
                    load.per_10_min,
                    "number",
                ),
                Figure("peak_10_min", text("10 分钟内报警峰值", "Alarms in the busiest 10 minutes"), load.peak),
                Figure(
                    "flood_share",
                    text("报警风暴时段占比", "Share of 10-minute windows in flood"),
                    load.flood_share,
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
    )
    report.sections.append(_load_section(load, total, frequent, chattering, counts))
    report.sections.append(_hours_section(scope, windows, start, span))
    report.sections.append(alarm_load.by_system(scope, counts))
    report.sections.append(_acks_section(acks))
    report.sections.append(_repairs_section(repairs))
    report.sections.append(
        _deadline_section(scope, "sla_teams", text("班组按期完成", "Deadlines kept per team"), "team", teams)
    )
    report.sections.append(
        _deadline_section(
            scope, "sla_vendors", text("维保单位按期完成", "Deadlines kept per vendor"), "vendor", vendors
        )
    )
    report.sections.append(_responses_section(scope, responses))
    report.sections.append(_frequent_section(scope, frequent))
    report.sections.append(
        Section(
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
            rows=[row for _, row in availability],
            note=text(
                "可用率 = 1 − 通讯类报警的报警中时长 ÷ 统计时长（本月已过时长）",
                "Availability = 1 − time under an active communication alarm ÷ the time covered (the month so far)",
            ),
        )
    )
    return report


@dataclass(frozen=True)
class Load:
    windows: int  # 10-minute windows in the time covered
    per_hour: float
    per_10_min: float
    peak: int
    flood_windows: int
    flood_share: float
    busy_hours: int
    busy_hour_share: float


def _load(windows: dict[int, int], total: int, span: int) -> Load:
    n = -(-span // WINDOW_NS)
    hours = -(-span // HOUR_NS)
    per_hour: Counter[int] = Counter()
    for k, count in windows.items():
        per_hour[k * WINDOW_NS // HOUR_NS] += count
    flood = sum(1 for c in windows.values() if c > FLOOD)
    busy = sum(1 for c in per_hour.values() if c > BUSY_HOUR)
    return Load(
        windows=n,
        per_hour=total / (span / HOUR_NS),
        per_10_min=total / (span / WINDOW_NS),
        peak=max(windows.values(), default=0),
        flood_windows=flood,
        flood_share=flood / n,
        busy_hours=busy,
        busy_hour_share=busy / hours,
    )


def _load_section(
    load: Load, total: int, frequent: list[alarm_load.Frequent], chattering: int, counts: dict[tuple[str, str], int]
) -> Section:
    by_priority: Counter[str] = Counter()
    for (_device, priority), n in counts.items():
        by_priority[priority] += n
    top = sum(f.activations for f in frequent)

    def share(*priorities: str) -> float | None:
        return sum(by_priority[p] for p in priorities) / total if total else None

    return Section(
        "alarm_load",
        text("报警负荷与 ISA-18.2 / EEMUA 191 基准", "Alarm load against ISA-18.2 and EEMUA 191"),
        figures=[
            Figure(
                "per_hour",
                text("平均每小时报警", "Alarms per hour, average"),
                load.per_hour,
                "number",
                text("≈6 很可能可接受，≈12 为可应付上限", "≈6 very likely acceptable, ≈12 the most manageable"),
                load.per_hour <= 6,
            ),
            Figure(
                "per_10_min",
                text("平均每 10 分钟报警", "Alarms per 10 minutes, average"),
                load.per_10_min,
                "number",
                text("≈1 很可能可接受，≈2 为可应付上限", "≈1 very likely acceptable, ≈2 the most manageable"),
                load.per_10_min <= 1,
            ),
            Figure(
                "peak_10_min",
                text("10 分钟内报警峰值", "Alarms in the busiest 10 minutes"),
                load.peak,
                "count",
                text("≤ 10", "≤ 10"),
                load.peak <= FLOOD,
            ),
            Figure(
                "flood_windows",
                text("报警风暴时段（10 分钟内超过 10 次）", "10-minute windows in flood (more than 10 alarms)"),
                load.flood_windows,
            ),
            Figure(
                "flood_share",
                text("报警风暴时段占比", "Share of 10-minute windows in flood"),
                load.flood_share,
                "ratio",
                text("< 1%", "< 1%"),
                load.flood_share < 0.01,
            ),
            Figure(
                "busy_hour_share",
                text("报警超过 30 次的小时占比", "Share of hours with more than 30 alarms"),
                load.busy_hour_share,
                "ratio",
                text("< 1%", "< 1%"),
                load.busy_hour_share < 0.01,
            ),
            Figure(
                "top_share",
                text("最频繁 10 个报警占总量比例", "Share of the load from the 10 most frequent alarms"),
                top / total if total else None,
                "ratio",
                text("≈1% 至 5%，不超过 5%", "≈1% to 5%, 5% at most"),
                top / total <= 0.05 if total else None,
            ),
            Figure(
                "chattering",
                text("被判为频繁报警的报警点", "Alarms found chattering"),
                chattering,
                "count",
                text("0", "0"),
                chattering == 0,
            ),
            Figure(
                "low_share", text("低优先级占比", "Share of low priority"), share("low"), "ratio", text("≈80%", "≈80%")
            ),
            Figure(
                "medium_share",
                text("中优先级占比", "Share of medium priority"),
                share("medium"),
                "ratio",
                text("≈15%", "≈15%"),
            ),
            Figure(
                "high_share",
                text("高优先级占比", "Share of high priority"),
                share(Priority.HIGH.value),
                "ratio",
                text("≈5%", "≈5%"),
            ),
            Figure(
                "emergency_share",
                text("紧急优先级占比", "Share of emergency priority"),
                share(Priority.EMERGENCY.value),
                "ratio",
                text("< 1%", "< 1%"),
            ),
        ],
        note=text(
            "基准见 ANSI/ISA-18.2-2016 与 EEMUA 191（单个操作岗位）；报警次数为报警进入报警中的次数",
            "Benchmarks of ANSI/ISA-18.2-2016 and EEMUA 191, for one operator position; "
            "an alarm counts each time it goes active",
        ),
    )


def _hours_section(scope: Scope, windows: dict[int, int], start: int, span: int) -> Section:
    """Alarms per local hour of the day over the month, and per day on average."""
    by_hour: Counter[int] = Counter()
    for k, count in windows.items():
        by_hour[datetime.fromtimestamp((start + k * WINDOW_NS) / NS, scope.zone).hour] += count
    days = span / (24 * HOUR_NS)
    return Section(
        "alarms_by_hour",
        text("各时段报警", "Alarms by hour of the day"),
        columns=[
            Column("hour", text("时段", "Hour")),
            Column("alarms", text("报警次数", "Alarms"), "count"),
            Column("per_day", text("日均", "Per day"), "number"),
        ],
        rows=[{"hour": f"{h:02d}", "alarms": by_hour[h], "per_day": by_hour[h] / days} for h in range(24)],
        chart=Chart("hour", ("alarms",), text("各时段报警次数（当地时间）", "Alarms per hour of the day (local time)")),
    )


@dataclass(frozen=True)
class Acks:
    activations: int
    acked: int
    total_ns: int  # sum over the acknowledged activations of the time to acknowledge


async def _acknowledge_times(s: AsyncSession, scope: Scope, start: int, end: int) -> dict[str, Acks]:
    """Per priority: each activation in [start, end) paired with the acknowledgement that follows it
    in its alarm's history, if one does before the alarm goes active again."""
    order = (AlarmHistoryRow.ts, AlarmHistoryRow.id)
    events = (
        select(
            AlarmHistoryRow.alarm_id,
            AlarmHistoryRow.ts,
            AlarmHistoryRow.action,
            func.lead(AlarmHistoryRow.action).over(partition_by=AlarmHistoryRow.alarm_id, order_by=order).label("next"),
            func.lead(AlarmHistoryRow.ts).over(partition_by=AlarmHistoryRow.alarm_id, order_by=order).label("next_ts"),
        )
        .where(AlarmHistoryRow.action.in_([*sorted(ACTIVATIONS), "acknowledged"]), AlarmHistoryRow.ts >= start)
        .subquery()
    )
    acked = events.c.next == "acknowledged"
    query = (
        select(
            AlarmRow.priority,
            func.count(),
            func.sum(case((acked, 1), else_=0)),
            func.sum(case((acked, events.c.next_ts - events.c.ts), else_=0)),
        )
        .select_from(events)
        .join(AlarmRow, AlarmRow.id == events.c.alarm_id)
        .where(events.c.action.in_(sorted(ACTIVATIONS)), events.c.ts < end, scope.on_devices(AlarmRow.device_id))
        .group_by(AlarmRow.priority)
    )
    return {p: Acks(int(n), int(a or 0), int(t or 0)) for p, n, a, t in (await s.execute(query)).all()}


def _acks_section(acks: dict[str, Acks]) -> Section:
    order = [p for p in alarm_load.PRIORITIES if p in acks] + sorted(set(acks) - set(alarm_load.PRIORITIES))
    rows: list[Row] = [
        {
            "priority": p,
            "activations": acks[p].activations,
            "acked": acks[p].acked,
            "unacked": acks[p].activations - acks[p].acked,
            "mtta": acks[p].total_ns // acks[p].acked if acks[p].acked else None,
        }
        for p in order
    ]
    return Section(
        "acknowledge",
        text("报警确认时间", "Time to acknowledge"),
        columns=[
            Column("priority", text("优先级", "Priority"), "word"),
            Column("activations", text("报警次数", "Alarms"), "count"),
            Column("acked", text("已确认", "Acknowledged"), "count"),
            Column("unacked", text("未确认即再次报警或仍未确认", "Not acknowledged"), "count"),
            Column("mtta", text("平均确认时间", "Mean time to acknowledge"), "duration"),
        ],
        rows=rows,
        note=text(
            "每次报警发生（含再次发生）到其后第一次确认的时间；未确认的不计入平均",
            "From each activation to the acknowledgement that follows it; activations never acknowledged are left out",
        ),
    )


@dataclass(frozen=True)
class Repairs:
    resolved: int
    total_ns: int


async def _repair_times(s: AsyncSession, scope: Scope, start: int, end: int) -> dict[str, Repairs]:
    """Per task kind: the tasks resolved in [start, end) and the sum of their times from creation."""
    query = (
        select(TaskRow.kind, func.count(), func.sum(TaskRow.resolved_at - TaskRow.created_at))
        .where(TaskRow.resolved_at >= start, TaskRow.resolved_at < end, scope.tasks())
        .group_by(TaskRow.kind)
    )
    return {k: Repairs(int(n), int(t or 0)) for k, n, t in (await s.execute(query)).all()}


def _repairs_section(repairs: dict[str, Repairs]) -> Section:
    order = [k.value for k in TaskKind if k.value in repairs]
    return Section(
        "repair",
        text("工单处理时间", "Time to resolve"),
        columns=[
            Column("kind", text("类型", "Kind"), "task_kind"),
            Column("resolved", text("本月解决", "Resolved"), "count"),
            Column("mttr", text("平均处理时间", "Mean time from creation to resolved"), "duration"),
        ],
        rows=[
            {"kind": k, "resolved": repairs[k].resolved, "mttr": repairs[k].total_ns // repairs[k].resolved}
            for k in order
        ],
        note=text(
            "本月解决的工单，自创建至解决；概要中的平均修复时间只计维修、紧急与投诉类",
            "Tasks resolved this month, from creation to resolved; the summary's mean time to repair counts "
            "repair, emergency and complaint tasks only",
        ),
    )


@dataclass(frozen=True)
class Deadlines:
    due: int  # tasks due in the month, cancelled ones left out
    met: int  # resolved by their due time
    missed: int  # resolved late, or not resolved and past due
    pending: int  # not resolved, not due yet


async def _deadlines(
    s: AsyncSession, scope: Scope, column: InstrumentedAttribute[Any], start: int, end: int, now: int
) -> dict[str, Deadlines]:
    """Per value of `column` (team or vendor): the tasks due in [start, end) and whether they were
    resolved by then, judged at `now`."""
    met = and_(TaskRow.resolved_at.is_not(None), TaskRow.resolved_at <= TaskRow.due)
    missed = or_(TaskRow.resolved_at > TaskRow.due, and_(TaskRow.resolved_at.is_(None), TaskRow.due < now))
    query = (
        select(column, func.count(), func.sum(case((met, 1), else_=0)), func.sum(case((missed, 1), else_=0)))
        .where(
            TaskRow.due >= start,
            TaskRow.due < end,
            TaskRow.status != TaskStatus.CANCELLED.value,
            column.is_not(None),
            scope.tasks(),
        )
        .group_by(column)
        .order_by(column)
    )
    return {
        k: Deadlines(int(n), int(m), int(x), int(n) - int(m) - int(x)) for k, n, m, x in (await s.execute(query)).all()
    }


def _deadline_section(scope: Scope, key: str, title: Bilingual, by: str, found: dict[str, Deadlines]) -> Section:
    return Section(
        key,
        title,
        columns=[
            Column(by, text("班组", "Team") if by == "team" else text("维保单位", "Vendor"), "name"),
            Column("due", text("本月到期", "Due this month"), "count"),
            Column("met", text("按期完成", "On time"), "count"),
            Column("missed", text("超期", "Late"), "count"),
            Column("pending", text("未到期", "Not due yet"), "count"),
            Column("compliance", text("按期率", "On time, share"), "ratio"),
        ],
        rows=[
            {
                by: (scope.vendor(k) if by == "vendor" else k) or NO_TEAM,
                "due": d.due,
                "met": d.met,
                "missed": d.missed,
                "pending": d.pending,
                "compliance": d.met / (d.met + d.missed) if d.met + d.missed else None,
            }
            for k, d in found.items()
        ],
        note=text(
            "期限在本月内的工单（不含已取消）：解决时间不晚于期限为按期；按期率 = 按期 ÷（按期 + 超期）",
            "Tasks due this month, cancelled ones left out: on time when resolved by the due time; "
            "share = on time ÷ (on time + late)",
        ),
    )


def _responses_section(scope: Scope, responses: dict[str, VendorSla]) -> Section:
    rows: list[Row] = []
    for vendor, r in sorted(responses.items()):
        judged = r.met + r.missed + r.open_past_limit
        rows.append(
            {
                "vendor": scope.vendor(vendor),
                "limit": r.limit_ns,
                "tasks": r.tasks,
                "met": r.met,
                "missed": r.missed,
                "no_show": r.open_past_limit,
                "waiting": r.waiting,
                "compliance": r.met / judged if judged else None,
                "mean": r.mean_response_ns,
                "worst": r.worst_response_ns,
            }
        )
    return Section(
        "vendor_response",
        text("维保单位到场响应", "Vendor call-out response"),
        columns=[
            Column("vendor", text("维保单位", "Vendor")),
            Column("limit", text("合同到场时限", "Contract: on site within"), "duration"),
            Column("tasks", text("报修次数", "Call-outs"), "count"),
            Column("met", text("按时到场", "On time"), "count"),
            Column("missed", text("迟到", "Late"), "count"),
            Column("no_show", text("超时未到", "Not there, past the limit"), "count"),
            Column("waiting", text("等待中", "Waiting, within the limit"), "count"),
            Column("compliance", text("按时率", "On time, share"), "ratio"),
            Column("mean", text("平均到场时间", "Mean response"), "duration"),
            Column("worst", text("最长到场时间", "Longest response"), "duration"),
        ],
        rows=rows,
        note=text(
            "本月发起的维修、紧急与投诉类工单；到场 = 首次转为处理中；按时率 = 按时 ÷（按时 + 迟到 + 超时未到）",
            "Repair, emergency and complaint tasks raised this month; arrival = the first move to in progress; "
            "share = on time ÷ (on time + late + not there past the limit)",
        ),
    )


async def _chattering(s: AsyncSession, scope: Scope, start: int, end: int) -> int:
    """How many (rule, device) pairs the store found chattering in [start, end)."""
    pairs = (
        select(AlarmRow.rule_id, AlarmRow.device_id)
        .join(AlarmHistoryRow, AlarmHistoryRow.alarm_id == AlarmRow.id)
        .where(
            AlarmHistoryRow.action == "chattering",
            AlarmHistoryRow.ts >= start,
            AlarmHistoryRow.ts < end,
            scope.on_devices(AlarmRow.device_id),
        )
        .distinct()
        .subquery()
    )
    return int((await s.execute(select(func.count()).select_from(pairs))).scalar_one())


def _frequent_section(scope: Scope, frequent: list[alarm_load.Frequent]) -> Section:
    return Section(
        "frequent",
        text("最频繁的 10 个报警", "The 10 most frequent alarms"),
        columns=[
            Column("rule", text("规则", "Rule")),
            Column("device", text("设备", "Device")),
            Column("title", text("内容", "Title")),
            Column("activations", text("报警次数", "Alarms"), "count"),
            Column("chattering", text("曾判为频繁报警", "Found chattering"), "flag"),
        ],
        rows=[
            {
                "rule": f.rule,
                "device": scope.name(f.device),
                "title": f.title,
                "activations": f.activations,
                "chattering": f.flagged,
            }
            for f in frequent
        ],
        note=text(
            "按规则与设备统计报警次数；频繁抖动的报警应优先处理",
            "Activations per rule and device; chattering alarms are the first to fix",
        ),
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
