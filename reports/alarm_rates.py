"""The monthly report's alarm load against the ISA-18.2 and EEMUA 191 benchmarks (for one operator
position): rates per hour and per 10 minutes, floods, the share of the most frequent alarms,
chattering, the priorities' shares; the alarms per hour of the day; the most frequent alarms."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from facility.model import Priority
from facility.store.reads.alarms import WINDOW_NS, Frequent
from reports.model import Chart, Column, Figure, Section, text
from reports.periods import NS
from reports.scope import Scope

HOUR_NS = 3600 * NS
FLOOD = 10  # more alarms than this in 10 minutes is a flood (ISA-18.2, EEMUA 191)
BUSY_HOUR = 30  # ISA-18.2: share of hours with more than 30 alarms, about 1% at most


@dataclass(frozen=True)
class Load:
    """The alarm rates of a span, from its activations per 10-minute window."""

    windows: int  # 10-minute windows in the time covered
    per_hour: float
    per_10_min: float
    peak: int
    flood_windows: int
    flood_share: float
    busy_hours: int
    busy_hour_share: float


def load(windows: dict[int, int], total: int, span: int) -> Load:
    """The rates of `total` activations over `span` ns, counted per window in `windows`."""
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


def load_section(
    rates: Load, total: int, frequent: list[Frequent], chattering: int, counts: dict[tuple[str, str], int]
) -> Section:
    """The load figures, each with its benchmark and whether it meets it."""
    return Section(
        "alarm_load",
        text("报警负荷与 ISA-18.2 / EEMUA 191 基准", "Alarm load against ISA-18.2 and EEMUA 191"),
        figures=[*_rate_figures(rates), *_share_figures(total, frequent, chattering, counts)],
        note=text(
            "基准见 ANSI/ISA-18.2-2016 与 EEMUA 191（单个操作岗位）；报警次数为报警进入报警中的次数",
            "Benchmarks of ANSI/ISA-18.2-2016 and EEMUA 191, for one operator position; "
            "an alarm counts each time it goes active",
        ),
    )


def _rate_figures(rates: Load) -> list[Figure]:
    return [
        Figure(
            "per_hour",
            text("平均每小时报警", "Alarms per hour, average"),
            rates.per_hour,
            "number",
            text("≈6 很可能可接受，≈12 为可应付上限", "≈6 very likely acceptable, ≈12 the most manageable"),
            rates.per_hour <= 6,
        ),
        Figure(
            "per_10_min",
            text("平均每 10 分钟报警", "Alarms per 10 minutes, average"),
            rates.per_10_min,
            "number",
            text("≈1 很可能可接受，≈2 为可应付上限", "≈1 very likely acceptable, ≈2 the most manageable"),
            rates.per_10_min <= 1,
        ),
        Figure(
            "peak_10_min",
            text("10 分钟内报警峰值", "Alarms in the busiest 10 minutes"),
            rates.peak,
            "count",
            text("≤ 10", "≤ 10"),
            rates.peak <= FLOOD,
        ),
        Figure(
            "flood_windows",
            text("报警风暴时段（10 分钟内超过 10 次）", "10-minute windows in flood (more than 10 alarms)"),
            rates.flood_windows,
        ),
        Figure(
            "flood_share",
            text("报警风暴时段占比", "Share of 10-minute windows in flood"),
            rates.flood_share,
            "ratio",
            text("< 1%", "< 1%"),
            rates.flood_share < 0.01,
        ),
        Figure(
            "busy_hour_share",
            text("报警超过 30 次的小时占比", "Share of hours with more than 30 alarms"),
            rates.busy_hour_share,
            "ratio",
            text("< 1%", "< 1%"),
            rates.busy_hour_share < 0.01,
        ),
    ]


def _share_figures(
    total: int, frequent: list[Frequent], chattering: int, counts: dict[tuple[str, str], int]
) -> list[Figure]:
    by_priority: Counter[str] = Counter()
    for (_device, priority), n in counts.items():
        by_priority[priority] += n
    top = sum(f.activations for f in frequent)

    def share(priority: str) -> float | None:
        return by_priority[priority] / total if total else None

    return [
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
        Figure("low_share", text("低优先级占比", "Share of low priority"), share("low"), "ratio", text("≈80%", "≈80%")),
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
    ]


def hours_section(scope: Scope, windows: dict[int, int], start: int, span: int) -> Section:
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


def frequent_section(scope: Scope, frequent: list[Frequent]) -> Section:
    """The most frequent alarms, per rule and device, and whether each was found chattering."""
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
