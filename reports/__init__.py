"""The reports managers read: the morning briefing, the shift handover and the monthly report.

Each is layout over the typed records of the ops store's read side (facility.store.reads, which
holds every query, in SQL where a month of alarms makes the volume large): a `Report`, which
`render` turns into HTML, Markdown, CSV, an Excel workbook or JSON in Chinese or English, its ids
named from the kernel's one table of words (facility.words). Every report can be limited to a set
of devices: records of other devices are left out, site-wide ones (a task without a device) always
stay in. Reports import only the kernel: the rules and schedules a briefing or monthly report needs
come from the caller, as the little a report reads of them (reports.communication, reports.rounds).
"""

from reports.briefing import briefing
from reports.handover import handover
from reports.model import Report
from reports.monthly import monthly
from reports.render import BINARY_FORMATS, FORMATS, MEDIA_TYPES, Format, render
from reports.values import Lang

__all__ = [
    "BINARY_FORMATS",
    "FORMATS",
    "MEDIA_TYPES",
    "Format",
    "Lang",
    "Report",
    "briefing",
    "handover",
    "monthly",
    "render",
]
