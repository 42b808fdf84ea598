"""A report value as people read it, in one language: local times, durations in days, hours and
minutes, percentages, and the names of ids."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from facility.vocabulary import Text
from facility.words import ACTIONS, TASK_KINDS, name, word
from reports.model import Cell, Kind, Report
from reports.periods import NS

Lang = Literal["zh", "en"]
NONE = "—"
_UNITS = {"zh": ("天", "小时", "分", "秒"), "en": (" d", " h", " min", " s")}


def show(value: Cell, kind: Kind, lang: Lang, zone: ZoneInfo) -> str:
    """`value` of `kind` for a reader of `lang`; a missing value is a dash."""
    if value is None or value == "":
        return NONE
    if isinstance(value, Text):
        return value.pick(lang)
    if isinstance(value, bool):
        return {"zh": ("是", "否"), "en": ("yes", "no")}[lang][0 if value else 1]
    if kind == "time" and isinstance(value, int):
        return local_time(value, zone)
    if kind == "duration" and isinstance(value, int):
        return duration(value, lang)
    if kind == "ratio" and isinstance(value, int | float):
        percent = value * 100
        return f"{percent:.1f}%" if percent >= 1 or percent == 0 else f"{_significant(percent, 2)}%"
    if kind == "number" and isinstance(value, int | float):
        return _significant(value, 3)
    if kind == "word" and isinstance(value, str):
        return word(value, lang)
    if kind == "task_kind" and isinstance(value, str):
        return word(value, lang, TASK_KINDS)
    if kind == "action" and isinstance(value, str):
        return word(value, lang, ACTIONS)
    if kind == "name" and isinstance(value, str):
        return name(value, lang)
    return str(value)


def _significant(value: float, digits: int) -> str:
    """`value` to `digits` significant digits (whole numbers in full), without an exponent or trailing zeros."""
    if value == 0:
        return "0"
    decimals = max(0, min(9, digits - 1 - math.floor(math.log10(abs(value)))))
    shown = f"{value:.{decimals}f}"
    return shown.rstrip("0").rstrip(".") if "." in shown else shown


def local_time(ts: int, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(ts / NS, zone).strftime("%Y-%m-%d %H:%M")


def duration(ns: int, lang: Lang) -> str:
    """The two largest units that matter: `1 h 05 min`, `2天3小时`, `45 s`."""
    seconds = round(ns / NS)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    d, h, m, s = _UNITS[lang]
    space = "" if lang == "zh" else " "
    if days:
        return f"{days}{d}{space}{hours}{h}"
    if hours:
        return f"{hours}{h}{space}{minutes:02d}{m}"
    if minutes:
        return f"{minutes}{m}{space}{secs:02d}{s}" if minutes < 10 and secs else f"{minutes}{m}"
    return f"{secs}{s}"


def heading(report: Report, lang: Lang) -> list[str]:
    """The lines under a report's title: site, period, when it was made, and its device limit."""
    zone = ZoneInfo(report.timezone)
    period = f"{local_time(report.start, zone)} – {local_time(report.end, zone)}"
    made = local_time(report.generated_at, zone)
    if lang == "zh":
        lines = [f"站点：{report.site_name or report.site}", f"时段：{period}（{report.timezone}）", f"生成：{made}"]
    else:
        lines = [f"Site: {report.site_name or report.site}", f"Period: {period} ({report.timezone})", f"Made: {made}"]
    if report.devices is not None:
        buildings = ", ".join(report.buildings or []) or NONE
        n = len(report.devices)
        lines.append(
            f"范围：楼栋 {buildings}（{n} 台设备）"
            if lang == "zh"
            else f"Limited to buildings {buildings} ({n} devices)"
        )
    return lines
