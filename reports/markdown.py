"""A report as Markdown: headings and pipe tables, for a chat message, a wiki page or the terminal.
Charts are left out; their tables carry the same numbers."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from reports.model import Report, Section
from reports.values import Lang, heading, show


def render_markdown(report: Report, lang: Lang) -> str:
    zone = ZoneInfo(report.timezone)
    lines = [f"# {report.title.pick(lang)}", "", *(f"- {line}" for line in heading(report, lang))]
    for section in report.sections:
        lines += ["", f"## {section.title.pick(lang)}", ""]
        lines += _section(section, lang, zone)
    return "\n".join(lines) + "\n"


def _section(section: Section, lang: Lang, zone: ZoneInfo) -> list[str]:
    lines: list[str] = []
    if section.figures:
        judged = any(f.benchmark is not None for f in section.figures)
        head = ["指标", "数值"] if lang == "zh" else ["Measure", "Value"]
        if judged:
            head += ["基准", "达标"] if lang == "zh" else ["Benchmark", "Met"]
        rows = []
        for f in section.figures:
            row = [f.label.pick(lang), show(f.value, f.kind, lang, zone)]
            if judged:
                row += [
                    f.benchmark.pick(lang) if f.benchmark else "",
                    "" if f.ok is None else show(f.ok, "flag", lang, zone),
                ]
            rows.append(row)
        lines += _table(head, rows)
    if section.columns:
        if section.rows:
            head = [c.label.pick(lang) for c in section.columns]
            rows = [[show(row.get(c.key), c.kind, lang, zone) for c in section.columns] for row in section.rows]
            lines += _table(head, rows)
        else:
            lines.append("无。" if lang == "zh" else "None.")
    if section.note is not None:
        lines += ["", f"*{_escape(section.note.pick(lang))}*"]
    return lines


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(_escape(h) for h in head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(_escape(cell) for cell in row) + " |" for row in rows]
    return out


def _escape(cell: str) -> str:
    """A cell on one line, its pipes taken literally."""
    return " ".join(cell.split()).replace("\\", "\\\\").replace("|", "\\|")
