"""What a report is made of, whatever it is rendered as: sections of figures, tables and charts.

Values stay raw (UTC ns, durations in ns, ratios from 0 to 1, ids), each column and figure saying
what kind of value it holds, so that the JSON is the data and every renderer formats it for its
language and medium.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from facility.vocabulary import Text

# text: a string or a Text; word: an id with a name in both languages (a priority, a status);
# task_kind: a task kind (its `emergency` is 应急, where the priority `emergency` is 紧急);
# action: a history's action (an alarm's `acknowledged` is what was done, 确认, not the state 已确认);
# name: a team, vendor or person, named when the desk names it (a library team, the rule engine);
# time: UTC ns; date: a day as YYYY-MM-DD (a nameplate's, a contract's: no time of day);
# duration: ns; ratio: 0..1; count: an integer; number: a float; flag: a bool
Kind = Literal[
    "text", "word", "task_kind", "action", "name", "time", "date", "duration", "ratio", "count", "number", "flag"
]
Cell = str | int | float | bool | Text | None
Row = dict[str, Cell]
ReportKind = Literal["briefing", "handover", "monthly", "alarms", "tasks", "equipment", "dead_letters"]


def text(zh: str, en: str) -> Text:
    return Text(zh, en)


@dataclass(frozen=True)
class Figure:
    """One headline value; `benchmark` says what it is held against, `ok` whether it meets it."""

    key: str
    label: Text
    value: Cell
    kind: Kind = "count"
    benchmark: Text | None = None
    ok: bool | None = None


@dataclass(frozen=True)
class Column:
    key: str
    label: Text
    kind: Kind = "text"


@dataclass(frozen=True)
class Chart:
    """A bar chart of a section's table: one bar per row, labelled by column `label`, its height
    the sum of the `series` columns (stacked when more than one)."""

    label: str
    series: tuple[str, ...]
    title: Text


@dataclass
class Section:
    key: str
    title: Text
    figures: list[Figure] = field(default_factory=list)
    columns: list[Column] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    chart: Chart | None = None
    note: Text | None = None  # how the section's figures were reached, when it is not obvious


@dataclass
class Report:
    kind: ReportKind
    title: Text
    site: str  # the site's id
    site_name: str
    timezone: str
    start: int  # UTC ns: the period the report covers, [start, end)
    end: int
    generated_at: int
    devices: list[str] | None  # the devices it is limited to (sorted); None: the whole site
    buildings: list[str] | None  # the buildings of those devices, to say so on the page
    sections: list[Section] = field(default_factory=list)

    def section(self, key: str) -> Section:
        return next(s for s in self.sections if s.key == key)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
