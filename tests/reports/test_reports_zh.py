"""Every report in Chinese, in every format that shows words (HTML, Markdown, CSV, Excel), holds no
English word: only ids, units, and the names the site file (or what people typed) gives in Latin
letters alone. A report's own words left untranslated fail here."""

from __future__ import annotations

import csv
import io
import re
from html.parser import HTMLParser

import pytest
from openpyxl import load_workbook

from facility.site import Site
from facility.store.ops import OpsStore
from reports import Report, briefing, handover, monthly, render
from tests.reports.conftest import RULES, Seed, at, rules_of, schedules_of
from tests.reports.test_briefing import DAY, MORNING, seed_day
from tests.reports.test_handover import seed_shift
from tests.reports.test_monthly import NOW, seed_november

WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_.][A-Za-z0-9]+)*")
STANDARDS = {"ANSI", "ISA-18.2-2016", "ISA-18.2", "EEMUA"}  # names of the standards the benchmarks cite
CODE = {"offline"}  # the rule language's function, named in a note
# what the seeds typed in English (task titles, notes, reasons, user ids): data, not words of the report
TYPED = {
    "seal", "lift", "leak", "sump", "pump", "cancelled", "done", "early", "noise", "plumber", "called", "parts",
    "ordered", "on", "the", "way", "battery", "swap", "replaced",
    "ana", "bo", "li", "eng",
}  # fmt: skip


class Text(HTMLParser):
    """The text a reader sees on a page: not the tags, the style sheet or the attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._skip += tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag == "style"

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def shown(report: Report, fmt: str) -> list[str]:
    """The texts of the report rendered in zh as `fmt`, cell by cell where it has cells."""
    if fmt == "html":
        page = Text()
        page.feed(render(report, "html", "zh"))
        return page.parts
    if fmt == "md":
        return [cell for line in render(report, "md", "zh").splitlines() for cell in line.split("|")]
    if fmt == "csv":
        return [c for row in csv.reader(render(report, "csv", "zh").splitlines()) for c in row]
    book = load_workbook(io.BytesIO(render(report, "xlsx", "zh")))
    texts = [str(c.value) for ws in book.worksheets for row in ws.iter_rows() for c in row if c.value is not None]
    return texts + book.sheetnames


def allowed(site: Site) -> set[str]:
    """Ids and the Latin-only names of the site file: the site, its devices, buildings, vendors, rules."""
    names = {site.site.id, site.site.name, site.site.timezone}
    for d in site.devices:
        names |= {d.id, d.name, d.profile, d.location.building}
    for v in site.vendors:
        names |= {v.id, v.name}
    names |= set(re.findall(r"id: ([\w-]+)", RULES))
    return {w for name in names if name for w in WORD.findall(name)} | STANDARDS | CODE | TYPED


@pytest.fixture
async def every_report(site: Site, store: OpsStore, seed: Seed) -> list[Report]:
    await seed_november(seed)
    await seed_day(seed)
    await seed_shift(seed)
    return [
        await briefing(site, store, DAY, now=at(MORNING), rules=rules_of(site), schedules=schedules_of(site)),
        await briefing(site, store, None, now=at(MORNING), rules=rules_of(site), schedules=schedules_of(site)),
        await handover(site, store, at("2026-12-09 00:00"), at("2026-12-09 12:00")),
        await monthly(site, store, 2026, 11, now=at(NOW), rules=rules_of(site)),
        await monthly(site, store, 2026, 12, now=at(MORNING), rules=rules_of(site)),
    ]


@pytest.mark.parametrize("fmt", ["html", "md", "csv", "xlsx"])
async def test_a_report_in_chinese_has_no_english_word(site: Site, every_report: list[Report], fmt: str) -> None:
    ok = allowed(site)
    for report in every_report:
        english = {w for text in shown(report, fmt) for w in WORD.findall(text) if w not in ok}
        assert not english, f"{report.kind} {report.title.zh} as {fmt}: {sorted(english)}"
