"""`facility report briefing|handover|monthly` on the ops store of a --data folder seeded beforehand."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import openpyxl
from typer.testing import CliRunner

from facility.site import Site
from facility_app.cli import app
from tests.reports.conftest import seeded_folder


def report(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    where = ["--site", str(tmp_path / "site.yaml"), "--data", str(tmp_path / "data")]
    result = CliRunner().invoke(app, ["report", *args, *where])
    return result.exit_code, result.stdout, result.stderr


def test_reports_print_as_markdown_or_go_to_a_file_in_any_format(tmp_path: Path, site: Site) -> None:
    seeded_folder(tmp_path / "data")
    code, out, _ = report(tmp_path, "monthly", "--month", "2026-10")
    assert code == 0
    assert out.startswith("# 月度报告 2026-10\n") and "| 平均确认时间 | 4分 |" in out

    target = tmp_path / "briefing.csv"
    code, out, _ = report(
        tmp_path, "briefing", "--date", "2026-10-05", "--format", "csv", "--lang", "en", "--out", str(target)
    )
    assert code == 0 and out == ""
    rows = list(csv.reader(target.read_text(encoding="utf-8-sig").splitlines()))
    assert rows[0] == ["section", "measure", "value", "benchmark"] and rows[1] == ["Summary", "Alarms raised", "2", ""]

    code, out, _ = report(tmp_path, "handover", "--since", "2026-10-05T09:00", "--format", "json")
    assert code == 0
    data = json.loads(out)
    figures = {f["key"]: f["value"] for f in data["sections"][0]["figures"]}
    assert figures["alarms_raised"] == 2 and figures["unfinished_tasks"] == 1

    code, out, _ = report(tmp_path, "briefing", "--date", "2026-10-05", "--format", "html", "--lang", "en")
    assert code == 0 and out.startswith("<!DOCTYPE html>") and "<svg" in out and "Morning briefing 2026-10-05" in out


def test_an_excel_report_goes_to_a_file_and_never_to_the_terminal(tmp_path: Path, site: Site) -> None:
    seeded_folder(tmp_path / "data")
    target = tmp_path / "2026-10.xlsx"
    code, out, _ = report(tmp_path, "monthly", "--month", "2026-10", "--format", "xlsx", "--out", str(target))
    assert code == 0 and out == ""
    workbook = openpyxl.load_workbook(target)
    assert len(workbook.sheetnames) > 1 and "月度报告" in str(workbook.worksheets[0]["A1"].value)

    code, out, err = report(tmp_path, "monthly", "--month", "2026-10", "--format", "xlsx")
    assert code == 2 and out == ""
    assert "--format" in err and "--out" in err and "FILE.xlsx" in err


def test_bad_options_are_refused_naming_the_option(tmp_path: Path, site: Site) -> None:
    seeded_folder(tmp_path / "data")
    for args, message in [
        (["monthly", "--month", "2026-13"], "2026-13 is not a month"),
        (["monthly", "--month", "October"], "'October' is not a month; write YYYY-MM"),
        (["briefing", "--date", "5/10/2026"], "'5/10/2026' is not a date; write YYYY-MM-DD"),
        (["handover", "--since", "2099-01-01T08:00"], "is after now"),
        (["briefing", "--format", "pdf"], "'pdf' is not one of html, md, csv, json, xlsx"),
        (["briefing", "--lang", "fr"], "'fr' is not zh or en"),
    ]:
        code, _, err = report(tmp_path, *args)
        assert code == 2, args
        assert message in " ".join(err.split()), err
        option = next(a for a in args if a.startswith("--"))
        assert option in err, err
