"""The engineers' rule tools: `facility rules check | test | backtest`, run as a user runs them."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from facility.model import Quality, Reading
from facility.store.sqlite_telemetry import SqliteTelemetry
from facility_app.cli import app
from rules.backtest import parse_time, span
from rules.testing import load_suite, parse_series, run_case

EXAMPLES = Path(__file__).parent / "examples"
SITE = EXAMPLES / "site.yaml"
SHANGHAI = ZoneInfo("Asia/Shanghai")
S = 1_000_000_000
MIN = 60 * S
T0 = int(datetime(2025, 3, 1, 8, 0, tzinfo=SHANGHAI).timestamp()) * S  # 2025-03-01 00:00 UTC
G = Quality.GOOD


def facility(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


# --- rules check ---------------------------------------------------------------------------


def test_check_summarises_rules_and_the_devices_they_bind() -> None:
    code, out, _ = facility("rules", "check", EXAMPLES / "rules", "--site", SITE)
    assert code == 0
    # low-pressure and dry-run on both pumps, entrapment on the lift
    assert out == "3 rules in 2 files: 5 conditions on 3 devices: OK\n"


def test_check_prints_every_problem_as_file_line_field(tmp_path: Path) -> None:
    rules = tmp_path / "pumps.yaml"
    rules.write_text(
        "rules:\n"
        "  - id: low\n"
        "    title: {zh: 低, en: low}\n"
        "    devices: {types: [booster_pump]}\n"
        "    when: running and outlet_presure < 0.25\n"
        "    priority: high\n"
        "  - id: hot\n"
        "    title: {zh: 热, en: hot}\n"
        "    devices: {types: [booster_pump]}\n"
        "    when: motor_temperature >\n"
        "    priority: high\n"
    )
    other = tmp_path / "other.yaml"
    other.write_text(
        "rules:\n  - id: x\n    title: {zh: x, en: x}\n    devices: {}\n    when: 'true'\n    priority: urgent\n"
    )
    code, out, _ = facility("rules", "check", rules, other, "--site", SITE)
    assert code == 1
    assert out.splitlines() == [
        f"{rules}:5: rules[0].when: unknown point 'outlet_presure' (column 13)",
        f"{rules}:10: rules[1].when: syntax error: invalid syntax",
        f"{other}:6: rules[0].priority: Input should be 'emergency', 'high', 'medium' or 'low'",
    ]


def test_check_binds_to_the_demo_site_by_default(
    tmp_path: Path, repo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = tmp_path / "standby.yaml"
    rules.write_text(
        "rules:\n  - id: standby-tripped\n    title: {zh: 备用泵跳闸, en: standby pump tripped}\n"
        "    devices: {ids: [pump-b2-3]}\n    when: tripped\n    priority: high\n"
    )
    monkeypatch.chdir(repo_root)
    code, out, _ = facility("rules", "check", rules)
    assert (code, out) == (0, "1 rule in 1 file: 1 condition on 1 device: OK\n")


def test_check_warns_of_a_rule_that_binds_no_device(tmp_path: Path) -> None:
    rules = tmp_path / "chillers.yaml"
    rules.write_text(
        "rules:\n  - id: chiller-off\n    title: {zh: 冷机停, en: chiller off}\n"
        "    devices: {types: [chiller]}\n    when: 'true'\n    priority: low\n"
    )
    code, out, err = facility("rules", "check", rules, "--site", SITE)
    assert code == 0
    assert f"warning: {rules}:2: devices: rule chiller-off matches no device of {SITE}" in err
    assert out == "1 rule in 1 file: 0 conditions on 0 devices: OK\n"


def test_check_refuses_a_folder_without_rule_files(tmp_path: Path) -> None:
    code, out, _ = facility("rules", "check", tmp_path, "--site", SITE)
    assert (code, out) == (1, f"{tmp_path}: no rule files (*.yaml) in this folder\n")


# --- rules test ----------------------------------------------------------------------------


def test_series_notation_follows_promtool() -> None:
    values = [s and s[0] for s in parse_series("0.5 0.4 0.2x3 _ 0.3")]
    assert values == [0.5, 0.4, 0.2, 0.2, 0.2, 0.2, None, 0.3]
    assert [s and s[0] for s in parse_series("1+2x2 5-0.1x2 _x2 truex1 false")] == [
        1.0, 3.0, 5.0, 5.0, 4.9, 4.8, None, None, True, True, False
    ]  # fmt: skip
    assert parse_series("\"dry_run\"x1 'a b'") == [("dry_run", G), ("dry_run", G), ("a b", G)]
    assert parse_series("stale 7") == [(None, Quality.STALE), (7, G)]
    assert parse_series(0.25) == [(0.25, G)] and parse_series(True) == [(True, G)]


@pytest.mark.parametrize("text", ["running", "1x", "truexa", "0.5 abc", ""])
def test_series_refuses_what_it_cannot_read(text: str) -> None:
    with pytest.raises(ValueError):
        parse_series(text)


def test_passing_rule_tests_exit_0() -> None:
    code, out, _ = facility("rules", "test", EXAMPLES / "pumps_test.yaml")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == str(EXAMPLES / "pumps_test.yaml")
    assert len([line for line in lines if line.startswith("  PASS  ")]) == 4
    assert lines[-1] == "4 passed, 0 failed"


def test_a_failing_rule_test_shows_expected_and_got_at_its_time() -> None:
    code, out, _ = facility("rules", "test", EXAMPLES / "lifts_failing_test.yaml")
    assert code == 1
    assert out.splitlines()[1:] == [
        "  PASS  entrapment once the car has stood 2m outside the door zone",
        "  FAIL  wrong on purpose (raised after 1m, and as a task)",
        "        at 1m, alarms:",
        "          expected: [{rule: entrapment, device: lift-1}]",
        "          got:      []",
        "        at 3m, alarms:",
        "          expected: []",
        "          got:      [{rule: entrapment, device: lift-1}]",
        "        at 3m, tasks:",
        "          expected: [{rule: entrapment, device: lift-1}]",
        "          got:      []",
        "1 passed, 1 failed",
    ]


def test_rule_tests_run_from_the_installed_command(repo_root: Path) -> None:
    facility_bin = Path(sys.executable).parent / "facility"
    done = subprocess.run(
        [facility_bin, "rules", "test", EXAMPLES / "pumps_test.yaml", EXAMPLES / "lifts_failing_test.yaml"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=repo_root,
    )
    assert done.returncode == 1
    assert done.stdout.splitlines()[-1] == "5 passed, 1 failed"


def test_a_bad_test_file_names_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad_test.yaml"
    bad.write_text(
        f"site: {SITE}\n"
        "tests:\n"
        "  - name: typos\n"
        "    input:\n"
        "      pump-9: {running: 'true'}\n"
        "      pump-1:\n"
        "        runing: 'true'\n"
        "        outlet_pressure: 0.2 low\n"
        "    expect:\n"
        "      - at: 5m\n"
        "        alarms: [{rule: low-presure, device: pump-1}]\n"
    )
    code, out, _ = facility("rules", "test", bad)
    assert code == 1
    assert f"{bad}:8: tests[0].input.pump-1.outlet_pressure: Value error, 'low' is not a sample" in out
    bad.write_text(bad.read_text().replace("0.2 low", "0.2"))
    code, out, _ = facility("rules", "test", bad)
    assert code == 1
    assert out.splitlines()[2:] == [
        f"{bad}:5: tests[0].input.pump-9: no device 'pump-9' in the site",
        f"{bad}:7: tests[0].input.pump-1.runing: pump-1 has no point 'runing' (known: "
        + ", ".join(sorted(_pump_points()))
        + ")",
        f"{bad}:11: tests[0].expect[0].alarms[0].rule: no rule 'low-presure' is loaded",
        "0 passed, 1 failed",
    ]


def test_a_test_file_naming_a_missing_site_says_which_line(tmp_path: Path) -> None:
    bad = tmp_path / "t.yaml"
    bad.write_text("site: nowhere.yaml\ntests:\n  - {name: x, input: {}, expect: [{at: 0s}]}\n")
    code, out, _ = facility("rules", "test", bad)
    assert code == 1
    assert f"{bad}:1: site: no such file or folder: {tmp_path / 'nowhere.yaml'}" in out


def test_task_and_both_outcomes_are_listed_under_tasks() -> None:
    # Rule files cannot say `outcome: task` yet (another change brings it); the spec is copied here.
    suite = load_suite(EXAMPLES / "lifts_failing_test.yaml")
    (rule,) = suite.rules
    as_task = dataclasses.replace(rule, spec=rule.spec.model_copy(update={"outcome": "task"}))
    as_both = dataclasses.replace(rule, spec=rule.spec.model_copy(update={"outcome": "both"}))
    wrong = suite.cases[1]  # expects an alarm at 1m, and a task at 3m
    assert [(m.at, m.kind) for m in run_case([as_task], wrong)] == [(60.0, "alarms")]
    assert [(m.at, m.kind, len(m.got)) for m in run_case([as_both], wrong)] == [
        (60.0, "alarms", 0),
        (180.0, "alarms", 1),
    ]


def test_two_expectations_at_one_time_are_both_checked() -> None:
    suite = load_suite(EXAMPLES / "pumps_test.yaml")
    case = suite.cases[0]
    (right,) = [e for e in case.expect if e.at == 360]
    doubled = case.model_copy(update={"expect": [right, right.model_copy(update={"alarms": []})]})
    assert run_case(suite.rules, case) == []
    assert [(m.at, m.kind) for m in run_case(suite.rules, doubled)] == [(360.0, "alarms")]


def _pump_points() -> list[str]:
    from facility.site import load_site

    site = load_site(SITE)
    return list(site.profile_of(site.device("pump-1")).points)


# --- rules backtest ------------------------------------------------------------------------


@pytest.fixture
def history_site(tmp_path: Path) -> Path:
    """The examples site with its own telemetry store, holding a morning of history."""
    site = tmp_path / "site.yaml"
    site.write_text(SITE.read_text().replace("rules: [rules/]", f"rules: [{EXAMPLES / 'rules'}]"))
    store = SqliteTelemetry(tmp_path / "var" / "telemetry.db")
    readings = []
    for m in range(0, 60):  # pump-1: low from 08:10 to 08:29, 0.27 until 08:39, recovered from 08:40 to 08:59
        pressure = 0.4 if m < 10 else 0.2 if m < 30 else 0.27 if m < 40 else 0.35
        readings += [Reading("pump-1", "running", True, G, T0 + m * MIN)]
        readings += [Reading("pump-1", "outlet_pressure", pressure, G, T0 + m * MIN)]
    # pump-2 reports only every 30 minutes: its 5m `for` elapses between readings, at 09:05
    readings += [Reading("pump-2", "running", True, G, T0 + m * MIN) for m in (0, 30, 60, 90)]
    readings += [Reading("pump-2", "outlet_pressure", p, G, T0 + m * MIN) for m, p in ((0, 0.4), (30, 0.4), (60, 0.1))]
    # the lift stops between floors at 09:50 and stays so
    lift = {"moving": False, "in_door_zone": False, "door_open": False, "alarm_button": True}
    readings += [Reading("lift-1", k, v, G, T0 + 110 * MIN) for k, v in lift.items()]
    readings += [
        Reading("pump-1", "fault_code", "dry_run", Quality.BAD, T0 + 50 * MIN)
    ]  # not good: not stored as a value
    store.write(readings)
    store.close()
    return site


def test_backtest_reports_what_would_have_fired_in_the_site_time_zone(history_site: Path) -> None:
    code, out, err = facility(
        "rules", "backtest", "--from", "2025-03-01T08:00", "--to", "2025-03-01T10:00", "--site", history_site
    )
    assert code == 0, err
    assert out.splitlines() == [
        "3 rules replayed from 2025-03-01 08:00:00 to 2025-03-01 10:00:00 (Asia/Shanghai)",
        "rule          device  raised               cleared              duration",
        "low-pressure  pump-1  2025-03-01 08:15:00  2025-03-01 08:40:00  25m",
        "low-pressure  pump-2  2025-03-01 09:05:00  still active         55m",
        "entrapment    lift-1  2025-03-01 09:52:00  still active         8m",
        "fired per rule:",
        "  low-pressure  2",
        "  entrapment    1",
        "  dry-run       0",
    ]


def test_backtest_replays_only_the_rules_given(history_site: Path) -> None:
    code, out, _ = facility(
        "rules", "backtest", "--from", "2025-03-01T01:30Z", "--to", "2025-03-01T10:00+08:00",
        "--site", history_site, "--rules", EXAMPLES / "rules" / "lifts.yaml", "--step", "30s",
    )  # fmt: skip
    assert code == 0
    assert out.splitlines() == [
        "1 rules replayed from 2025-03-01 09:30:00 to 2025-03-01 10:00:00 (Asia/Shanghai)",
        "rule        device  raised               cleared       duration",
        "entrapment  lift-1  2025-03-01 09:52:00  still active  8m",
        "fired per rule:",
        "  entrapment  1",
    ]


def test_backtest_with_nothing_fired_says_so(history_site: Path) -> None:
    code, out, _ = facility(
        "rules", "backtest", "--from", "2025-03-01T06:00", "--to", "2025-03-01T08:05", "--site", history_site
    )
    assert code == 0
    assert out.splitlines()[1:3] == ["nothing would have fired", "fired per rule:"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "yesterday"], "Invalid value for --from: 'yesterday' is not a time"),
        (["--from", "-1h", "--to", "-2x"], "Invalid value for --to: '2x' is not a duration"),
        (["--from", "-1h", "--to", "-2h"], "Invalid value for --from: -1h is not before --to -2h"),
        (["--from", "-1h", "--step", "0s"], "Invalid value for --step: must be longer than 0"),
    ],
)
def test_backtest_refuses_bad_times(history_site: Path, args: list[str], message: str) -> None:
    code, _, err = facility("rules", "backtest", "--site", history_site, *args)
    assert code == 2
    assert message in " ".join(err.split())


def test_backtest_needs_a_store_with_history(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(SITE.read_text().replace("rules: [rules/]", "rules: []"))
    code, _, err = facility("rules", "backtest", "--from", "-1d", "--site", site)
    assert code == 2
    assert f"no telemetry store at {tmp_path / 'var' / 'telemetry.db'}" in err
    assert not (tmp_path / "var").exists()


def test_times_parse_as_iso_in_the_site_zone_or_relative_to_now() -> None:
    now = T0 + 123
    assert parse_time("2025-03-01T08:00", SHANGHAI, now) == T0
    assert parse_time("2025-03-01", SHANGHAI, now) == T0 - 8 * 3600 * S
    assert parse_time("2025-03-01T00:00:00.000001Z", SHANGHAI, now) == T0 + 1000
    assert parse_time("2025-03-01T01:00+01:00", SHANGHAI, now) == T0
    assert parse_time("now", SHANGHAI, now) == now
    assert parse_time("-7d", SHANGHAI, now) == parse_time("now-7d", SHANGHAI, now) == now - 7 * 86400 * S


def test_durations_read_as_rule_files_write_them() -> None:
    assert [span(s) for s in (0, 0.5, 5, 90, 3600, 86400 + 7260, 1.5)] == [
        "0s",
        "500ms",
        "5s",
        "1m30s",
        "1h",
        "1d2h1m",
        "1.5s",
    ]
