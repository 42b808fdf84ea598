"""A report as one printable HTML page: A4 with a print stylesheet, charts as inline SVG, no script
and nothing fetched from elsewhere, so that it prints, mails and archives as it is."""

from __future__ import annotations

from html import escape
from zoneinfo import ZoneInfo

from reports.charts import bar_chart
from reports.model import Figure, Report, Section
from reports.values import Lang, heading, show

STYLE = """
@page { size: A4; margin: 14mm 12mm; }
* { box-sizing: border-box; }
body { font-family: "Noto Sans CJK SC", "Source Han Sans SC", "PingFang SC", "Microsoft YaHei", system-ui, sans-serif;
       font-size: 10pt; color: #222; max-width: 210mm; margin: 0 auto; padding: 8mm; line-height: 1.4; }
h1 { font-size: 16pt; margin: 0 0 2mm; }
h2 { font-size: 12pt; margin: 6mm 0 2mm; border-bottom: 1px solid #999; break-after: avoid; }
.meta { color: #555; margin: 0 0 4mm; }
.meta span { margin-right: 4mm; }
table { width: 100%; border-collapse: collapse; font-size: 8.5pt; margin-bottom: 2mm; }
th, td { border: 1px solid #ccc; padding: 1mm 1.5mm; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td.n { text-align: right; white-space: nowrap; }
thead { display: table-header-group; }
tr { break-inside: avoid; }
.ok { color: #1b5e20; }
.not-ok { color: #b71c1c; font-weight: bold; }
.note, .empty { color: #555; font-size: 8.5pt; }
svg.chart { width: 100%; height: auto; max-height: 70mm; break-inside: avoid; }
svg.chart text { font-size: 11px; fill: #333; }
svg.chart .grid { stroke: #ddd; stroke-width: 1; }
@media print { body { padding: 0; max-width: none; } }
"""
NUMERIC = {"count", "number", "ratio", "duration"}


def render_html(report: Report, lang: Lang) -> str:
    zone = ZoneInfo(report.timezone)
    title = escape(report.title.pick(lang))
    meta = "".join(f"<span>{escape(line)}</span>" for line in heading(report, lang))
    body = "".join(_section(section, lang, zone) for section in report.sections)
    return (
        f'<!DOCTYPE html>\n<html lang="{"zh-CN" if lang == "zh" else "en"}"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{STYLE}</style></head>"
        f'<body><header><h1>{title}</h1><p class="meta">{meta}</p></header>{body}</body></html>\n'
    )


def _section(section: Section, lang: Lang, zone: ZoneInfo) -> str:
    parts = [f'<section id="{escape(section.key)}"><h2>{escape(section.title.pick(lang))}</h2>']
    if section.figures:
        parts.append(_figures(section.figures, lang, zone))
    if section.columns:
        if section.chart is not None:
            parts.append(bar_chart(section, section.chart, lang, zone))
        parts.append(_table(section, lang, zone) if section.rows else f'<p class="empty">{_none(lang)}</p>')
    if section.note is not None:
        parts.append(f'<p class="note">{escape(section.note.pick(lang))}</p>')
    parts.append("</section>")
    return "".join(parts)


def _figures(figures: list[Figure], lang: Lang, zone: ZoneInfo) -> str:
    judged = any(f.benchmark is not None for f in figures)
    head = ["指标", "数值"] if lang == "zh" else ["Measure", "Value"]
    if judged:
        head += ["基准", "达标"] if lang == "zh" else ["Benchmark", "Met"]
    rows = []
    for f in figures:
        cells = [
            f"<td>{escape(f.label.pick(lang))}</td>",
            f'<td class="n">{escape(show(f.value, f.kind, lang, zone))}</td>',
        ]
        if judged:
            cells.append(f"<td>{escape(f.benchmark.pick(lang)) if f.benchmark else ''}</td>")
            verdict = "" if f.ok is None else show(f.ok, "flag", lang, zone)
            css = "" if f.ok is None else (' class="ok"' if f.ok else ' class="not-ok"')
            cells.append(f"<td{css}>{escape(verdict)}</td>")
        rows.append(f'<tr data-key="{escape(f.key)}">{"".join(cells)}</tr>')
    header = "".join(f"<th>{escape(h)}</th>" for h in head)
    return f'<table class="figures"><thead><tr>{header}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _table(section: Section, lang: Lang, zone: ZoneInfo) -> str:
    header = "".join(f"<th>{escape(c.label.pick(lang))}</th>" for c in section.columns)
    rows = []
    for row in section.rows:
        cells = []
        for c in section.columns:
            css = ' class="n"' if c.kind in NUMERIC else ""
            cells.append(f"<td{css}>{escape(show(row.get(c.key), c.kind, lang, zone))}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _none(lang: Lang) -> str:
    return "无" if lang == "zh" else "None"
