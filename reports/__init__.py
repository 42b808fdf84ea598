"""The reports managers read: the morning briefing, the shift handover and the monthly report.

Each is built from the ops store (through its sessions, in SQL where a month of alarms makes the
volume large) into a `Report`, which `render` turns into HTML, Markdown, CSV, an Excel workbook or
JSON in Chinese or English. Every report can be limited to a set of devices: records of other
devices are left out, site-wide ones (a task without a device) always stay in.
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
