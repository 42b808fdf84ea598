"""How many alarms went off per system and priority, as a table and a stacked chart: the counts are
activations (facility.store.reads.alarms), each time an alarm went active, which is what reached
duty staff."""

from __future__ import annotations

from collections import Counter

from facility import words
from facility.model import Priority
from facility.vocabulary import Text
from reports.model import Chart, Column, Row, Section, text
from reports.scope import Scope

PRIORITIES = [p.value for p in Priority]


def _heading(word: Text) -> Text:
    """A column named by the one table's word, capitalised in English as a heading is."""
    return text(word.zh, word.en.capitalize())


def by_system(scope: Scope, counts: dict[tuple[str, str], int]) -> Section:
    """Activations per system (every system in view, with none too) and priority, as a stacked chart."""
    table: dict[str, Counter[str]] = {system: Counter() for system in scope.systems()}
    for (device, priority), n in counts.items():
        table.setdefault(scope.system(device), Counter())[priority] += n
    rows: list[Row] = [
        {"system": system, **{p: found[p] for p in PRIORITIES}, "total": sum(found.values())}
        for system, found in sorted(table.items())
    ]
    return Section(
        key="alarms_by_system",
        title=text("各系统报警（按优先级）", "Alarms by system and priority"),
        columns=[
            Column("system", text("系统", "System"), "word"),
            *(Column(p, _heading(words.PRIORITIES[p]), "count") for p in PRIORITIES),
            Column("total", text("合计", "Total"), "count"),
        ],
        rows=rows,
        chart=Chart("system", tuple(PRIORITIES), text("各系统报警次数", "Alarms per system")),
    )
