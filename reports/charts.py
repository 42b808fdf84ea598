"""Bar charts as inline SVG: no script and no external resource, so a saved or printed report shows
them as it shows its text."""

from __future__ import annotations

import math
from html import escape
from zoneinfo import ZoneInfo

from facility.words import word
from reports.model import Chart, Column, Section
from reports.values import Lang, show

WIDTH, HEIGHT = 680, 240
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 12, 44
COLOURS = {"emergency": "#b71c1c", "high": "#ef6c00", "medium": "#f9a825", "low": "#1e88e5"}
DEFAULT_COLOUR = "#3b6ea5"


def bar_chart(section: Section, chart: Chart, lang: Lang, zone: ZoneInfo) -> str:
    """The section's rows as bars (stacked per series), with a scale and, for several series, a legend;
    nothing when every bar would be empty."""
    columns = {c.key: c for c in section.columns}
    labels = [show(row.get(chart.label), columns[chart.label].kind, lang, zone) for row in section.rows]
    stacks = [[_number(row.get(key)) for key in chart.series] for row in section.rows]
    if not any(value > 0 for stack in stacks for value in stack):
        return ""
    step, steps = _scale(max((sum(stack) for stack in stacks), default=0))
    top = step * steps
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(stacks), 1)
    title = chart.title.pick(lang)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" class="chart">',
        f"<title>{escape(title)}</title>",
    ]
    for i in range(steps + 1):
        value = step * i
        y = TOP + plot_h - plot_h * i / steps
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{value:g}</text>')
    for i, (label, stack) in enumerate(zip(labels, stacks, strict=True)):
        x = LEFT + i * slot + slot * 0.15
        base = float(TOP + plot_h)
        for key, value in zip(chart.series, stack, strict=True):
            if value <= 0:
                continue
            h = plot_h * value / top
            base -= h
            name = escape(f"{label}: {_series_name(key, columns, lang)} {value:g}")
            parts.append(
                f'<rect x="{x:.1f}" y="{base:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}" '
                f'fill="{COLOURS.get(key, DEFAULT_COLOUR)}"><title>{name}</title></rect>'
            )
        total = sum(stack)
        if total:
            parts.append(f'<text x="{x + slot * 0.35:.1f}" y="{base - 3:.1f}" text-anchor="middle">{total:g}</text>')
        parts.append(
            f'<text x="{x + slot * 0.35:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle">{escape(label)}</text>'
        )
    if len(chart.series) > 1:
        x = LEFT
        for key in chart.series:
            name = escape(_series_name(key, columns, lang))
            parts.append(
                f'<rect x="{x}" y="{HEIGHT - 14}" width="10" height="10" fill="{COLOURS.get(key, DEFAULT_COLOUR)}"/>'
            )
            parts.append(f'<text x="{x + 14}" y="{HEIGHT - 5}">{name}</text>')
            x += 24 + 9 * len(name)
    parts.append("</svg>")
    return "".join(parts)


def _series_name(key: str, columns: dict[str, Column], lang: Lang) -> str:
    column = columns.get(key)
    return column.label.pick(lang) if column else word(key, lang)


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _scale(value: float) -> tuple[float, int]:
    """A round step (1, 2 or 5 times a power of ten) and how many of them (at most 5) reach `value`."""
    step = 1.0
    while True:
        for factor in (1, 2, 5):
            if step * factor * 5 >= value:
                return step * factor, max(1, math.ceil(value / (step * factor)))
        step *= 10
