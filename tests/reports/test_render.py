"""Each report in each format and language: HTML that parses, prints on A4 and carries the figures and
its charts as inline SVG with nothing fetched from elsewhere; Markdown tables; CSV the csv module
reads; JSON that is the report's data."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from openpyxl import load_workbook

from facility.site import Site
from facility.store.ops import OpsStore
from reports import FORMATS, MEDIA_TYPES, Format, Lang, Report, briefing, handover, monthly, render
from tests.reports.conftest import MINUTE, Seed, at, rules_of, schedules_of
from tests.reports.test_briefing import DAY, MORNING, seed_day
from tests.reports.test_monthly import NOW, seed_november

LANGS: tuple[Lang, ...] = ("zh", "en")
VOID = {"meta", "br", "img", "hr", "input", "link"}


class Page(HTMLParser):
    """The tags of a page, checked to nest, and its text."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, f"</{tag}> closes <{self.open[-1] if self.open else None}>"
        self.open.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> Page:
    parsed = Page()
    parsed.feed(page)
    parsed.close()
    assert parsed.open == [], f"never closed: {parsed.open}"
    return parsed


def csv_blocks(text: str) -> dict[str, list[list[str]]]:
    """The CSV's rows by section (its first column), the header line of each block kept first."""
    assert text.startswith("\ufeff")  # for Excel to read it as UTF-8
    blocks: dict[str, list[list[str]]] = {}
    header: list[str] = []
    for row in csv.reader(text.removeprefix("\ufeff").splitlines()):
        if not row:
            header = []
        elif not header:
            header = row
        else:
            blocks.setdefault(row[0], [header]).append(row)
    return blocks


@pytest.fixture
async def november(site: Site, store: OpsStore, seed: Seed) -> Report:
    await seed_november(seed)
    return await monthly(site, store, 2026, 11, now=at(NOW), rules=rules_of(site))


@pytest.mark.parametrize(
    ("lang", "words"),
    [
        (
            "en",
            ["Monthly report 2026-11", "Mean time to acknowledge", "3 min 40 s", "2 h 00 min", "Otis service", "33.3%"],
        ),
        ("zh", ["月度报告 2026-11", "平均确认时间", "3分40秒", "2小时00分", "Otis service", "33.3%", "电梯"]),
    ],
)
async def test_html_is_a_self_contained_printable_page_with_the_figures_and_charts(
    november: Report, lang: Lang, words: list[str]
) -> None:
    page = render(november, "html", lang)
    parsed = parse(page)
    text = "".join(parsed.text)
    for word in words:
        assert word in text
    tags = [tag for tag, _ in parsed.tags]
    assert tags.count("svg") == 2  # alarms by hour of the day, alarms by system
    assert "script" not in tags and "img" not in tags and "link" not in tags
    assert not [a for _, attrs in parsed.tags for a in attrs if a in ("src", "href") or a.startswith("on")]
    style = page[page.index("<style>") : page.index("</style>")]
    assert "@page { size: A4" in style and "url(" not in style and "@import" not in style
    assert ('lang="zh-CN"' if lang == "zh" else 'lang="en"') in page
    peak = re.search(r'<section id="alarm_load">.*?(<tr data-key="peak_10_min">.*?</tr>)', page)
    assert peak is not None and 'class="not-ok"' in peak.group(1)  # 12 in ten minutes is a flood


async def test_the_html_prints_on_a4_pages(tmp_path: Path, november: Report) -> None:
    page, pdf = tmp_path / "report.html", tmp_path / "report.pdf"
    page.write_text(render(november, "html", "zh"), encoding="utf-8")
    chromium = await asyncio.create_subprocess_exec(
        "/usr/bin/chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--no-pdf-header-footer",
        f"--print-to-pdf={pdf}",
        page.as_uri(),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert await asyncio.wait_for(chromium.wait(), 60) == 0
    boxes = re.findall(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", pdf.read_bytes())
    assert len(boxes) > 1  # the month does not fit one page
    for width, height in boxes:
        assert abs(float(width) - 595.3) < 2 and abs(float(height) - 841.9) < 2  # A4 in points


@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_markdown_has_a_table_per_section(november: Report, lang: Lang) -> None:
    text = render(november, "md", lang)
    lines = text.splitlines()
    assert lines[0] == ("# Monthly report 2026-11" if lang == "en" else "# 月度报告 2026-11")
    assert sum(1 for line in lines if line.startswith("## ")) == len(november.sections)
    assert sum(1 for line in lines if re.fullmatch(r"\|(---\|)+", line)) == len(november.sections)
    mtta = "| Mean time to acknowledge | 3 min 40 s |" if lang == "en" else "| 平均确认时间 | 3分40秒 |"
    assert mtta in lines
    otis = next(line for line in lines if line.startswith("| Otis service | 30"))
    assert otis.split(" | ")[2:5] == ["3", "1", "1"]


@pytest.mark.parametrize(("lang", "section"), [("en", "Vendor call-out response"), ("zh", "维保单位到场响应")])
async def test_csv_is_one_file_with_a_block_per_section(november: Report, lang: Lang, section: str) -> None:
    blocks = csv_blocks(render(november, "csv", lang))
    header, otis = blocks[section]
    row = dict(zip(header, otis, strict=True))
    if lang == "en":
        assert row["Mean response (min)"] == "40.0" and row["On time, share (%)"] == "33.3"
        assert row["Contract: on site within (min)"] == "30.0" and row["Call-outs"] == "3"
    else:
        assert row["平均到场时间（分钟）"] == "40.0" and row["按时率（%）"] == "33.3"
    assert len(blocks) == len(november.sections)  # every section has a block, figures or table
    hours = blocks["Alarms by hour of the day" if lang == "en" else "各时段报警"]
    assert len(hours) == 1 + 24


async def test_json_is_the_report_data_with_both_languages(november: Report) -> None:
    data = json.loads(render(november, "json", "en"))
    assert data["kind"] == "monthly" and data["title"] == {"zh": "月度报告 2026-11", "en": "Monthly report 2026-11"}
    assert (data["start"], data["end"], data["timezone"]) == (
        at("2026-11-01 00:00"),
        at("2026-12-01 00:00"),
        "Asia/Shanghai",
    )
    summary = {f["key"]: f["value"] for f in next(s for s in data["sections"] if s["key"] == "summary")["figures"]}
    assert summary["mtta"] == (4 + 1 + 6) * MINUTE // 3 and summary["alarms"] == 18
    assert data["devices"] is None
    assert MEDIA_TYPES["json"] == "application/json" and MEDIA_TYPES["csv"].startswith("text/csv")


@pytest.mark.parametrize("fmt", FORMATS)
async def test_every_report_renders_in_every_format_and_language(
    site: Site, store: OpsStore, seed: Seed, fmt: Format
) -> None:
    await seed_day(seed)
    reports = [
        await briefing(site, store, DAY, now=at(MORNING), rules=rules_of(site), schedules=schedules_of(site)),
        await handover(site, store, None, at(MORNING), {"pump-1"}),
        await monthly(site, store, 2026, 12, now=at(MORNING), rules=rules_of(site)),
    ]
    for report in reports:
        for lang in LANGS:
            text = render(report, fmt, lang)
            if isinstance(text, bytes):
                assert fmt == "xlsx" and load_workbook(io.BytesIO(text)).sheetnames[0] in ("报告", "Report")
            elif fmt == "html":
                parse(text)
            elif fmt == "csv":
                assert csv_blocks(text)
            elif fmt == "json":
                assert json.loads(text)["kind"] == report.kind
            else:
                assert text.startswith("# ")


async def test_a_chart_with_nothing_to_show_is_left_out(site: Site, store: OpsStore) -> None:
    quiet = await briefing(site, store, DAY, now=at(MORNING), rules=rules_of(site), schedules=schedules_of(site))
    page = render(quiet, "html", "en")
    assert "<svg" not in page and '<section id="alarms_by_system">' in page
