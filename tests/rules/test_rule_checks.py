"""What `facility rules check` catches before a rule runs: texts an enum point never takes,
placeholders nothing fills, a `both` outcome without its task, and texts in one language only."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from facility.site import load_site
from facility_app.cli import app
from rules.plans import load_plans
from rules.ruleset import load_rules

PROFILE = """\
type: chiller
system: hvac
points:
  mode:
    label: {zh: 运行模式, en: Mode}
    modbus: {table: holding, address: 0, enum: {0: cool, 1: heat, 2: "off"}}
  supply_temperature:
    label: {zh: 供水温度, en: Supply temperature}
    unit: °C
    modbus: {table: holding, address: 1, type: int16, scale: 0.1}
"""


def chiller_site(folder: Path) -> Path:
    """A site with one chiller of a profile of its own (a `mode` enum), and no rule library."""
    (folder / "profiles").mkdir()
    (folder / "profiles" / "chiller.yaml").write_text(PROFILE)
    site = folder / "site.yaml"
    site.write_text(
        "site: {id: plant}\n"
        "use_rule_library: false\n"
        "profiles: [profiles]\n"
        "devices:\n"
        "  - {id: chiller-1, profile: chiller, modbus: {port: 1502}}\n"
    )
    return site


def rules_check(site: Path, rules: Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["rules", "check", str(rules), "--site", str(site)])
    return result.exit_code, result.stdout


def test_a_mode_the_profile_does_not_have_is_named_with_the_modes_it_has(tmp_path: Path) -> None:
    site = chiller_site(tmp_path)
    rules = tmp_path / "chiller.yaml"
    rules.write_text(
        "rules:\n"
        "  - id: defrost-too-long\n"
        "    title: {zh: 除霜过长, en: defrost too long}\n"
        "    devices: {types: [chiller]}\n"
        '    when: mode == "defrost" and supply_temperature > 12\n'  # line 5
        "    for: 20m\n"
        "    priority: medium\n"
        "  - id: not-running\n"
        "    title: {zh: 未运行, en: not running}\n"
        "    devices: {types: [chiller]}\n"
        '    when: mode in ["cool", "heat"] and supply_temperature > 20\n'  # modes it has: fine
        '    clear: mode not in ["cool", "stopped"]\n'  # line 12
        "    priority: low\n"
    )
    code, out = rules_check(site, rules)
    assert code == 1
    assert out.splitlines() == [
        f"{rules}:5: rules[0].when: mode is never 'defrost' (column 9): "
        "profile 'chiller' gives it the values cool, heat, off",
        f"{rules}:12: rules[1].clear: mode is never 'stopped' (column 22): "
        "profile 'chiller' gives it the values cool, heat, off",
    ]


def test_a_placeholder_no_point_fills_is_named_with_its_template_field(tmp_path: Path) -> None:
    site = chiller_site(tmp_path)
    rules = tmp_path / "chiller.yaml"
    rules.write_text(
        "rules:\n"
        "  - id: warm\n"
        "    title:\n"
        '      zh: "{device_name} 供水温度 {supply_temperature:.1f}"\n'
        '      en: "{device_name}: supply at {supply_temprature:.1f}"\n'  # line 5: misspelt
        '    message: {zh: "{building} {room} {floor}", en: "{building} {room}"}\n'  # line 6: {floor}
        "    devices: {types: [chiller]}\n"
        "    when: supply_temperature > 12\n"
        "    priority: low\n"
    )
    code, out = rules_check(site, rules)
    assert code == 1
    known = "device, device_name, building, location_floor, room"
    assert out.splitlines() == [
        f"{rules}:5: rules[0].title.en: {{supply_temprature}} is no point of this rule's devices nor one of {known}",
        f"{rules}:6: rules[0].message.zh: {{floor}} is no point of this rule's devices nor one of {known}",
    ]


def test_outcome_both_without_a_task_is_an_error_at_the_rule(tmp_path: Path) -> None:
    site = chiller_site(tmp_path)
    rules = tmp_path / "chiller.yaml"
    rules.write_text(
        "rules:\n"
        "  - id: warm\n"  # line 2
        "    title: {zh: 水温高, en: warm}\n"
        "    devices: {types: [chiller]}\n"
        "    when: supply_temperature > 12\n"
        "    priority: low\n"
        "    outcome: both\n"
    )
    code, out = rules_check(site, rules)
    assert code == 1
    message = "outcome both opens a task: describe it under task: (kind, team, sla, checklist)"
    assert out == f"{rules}:2: rules[0].task: {message}\n"


def test_a_text_in_one_language_loads_shown_in_it_with_a_warning(tmp_path: Path) -> None:
    site = load_site(chiller_site(tmp_path))
    rules = tmp_path / "chiller.yaml"
    rules.write_text(
        "rules:\n"
        "  - id: warm\n"
        '    title: {zh: "{device_name} 水温高"}\n'  # line 3: Chinese only
        "    message: {en: supply too warm}\n"  # line 4: English only
        "    devices: {types: [chiller]}\n"
        "    when: supply_temperature > 12\n"
        "    priority: low\n"
    )
    (rule,) = load_rules(site, [rules])
    assert (rule.spec.title.zh, rule.spec.title.en) == ("{device_name} 水温高", "{device_name} 水温高")
    assert rule.spec.message is not None and rule.spec.message.zh == "supply too warm"
    assert [(w.file, w.line, w.field) for w in rule.warnings] == [
        (str(rules), 3, "rules[0].title"),
        (str(rules), 4, "rules[0].message"),
    ]
    assert "given in zh only" in rule.warnings[0].message and "add `en:`" in rule.warnings[0].message


def test_rules_test_reads_an_omitted_alarms_or_tasks_as_none_expected(tmp_path: Path) -> None:
    site = chiller_site(tmp_path)
    (tmp_path / "chiller.yaml").write_text(
        "rules:\n"
        "  - id: warm\n"
        "    title: {zh: 水温高, en: warm}\n"
        "    devices: {types: [chiller]}\n"
        "    when: supply_temperature > 12\n"
        "    priority: low\n"
        "    outcome: both\n"
        "    task: {team: hvac}\n"
    )
    tests = tmp_path / "chiller_test.yaml"
    tests.write_text(
        f"site: {site.name}\n"
        "rules: [chiller.yaml]\n"
        "tests:\n"
        "  - name: a both rule is listed under alarms and under tasks\n"
        "    input: {chiller-1: {supply_temperature: 10 15}}\n"
        "    expect:\n"
        "      - at: 0s\n"
        "      - at: 1m\n"
        "        alarms: [{rule: warm, device: chiller-1}]\n"
        "        tasks: [{rule: warm, device: chiller-1}]\n"
        "  - name: tasks left out\n"
        "    input: {chiller-1: {supply_temperature: 15}}\n"
        "    expect:\n"
        "      - at: 0s\n"
        "        alarms: [{rule: warm, device: chiller-1}]\n"
    )
    result = CliRunner().invoke(app, ["rules", "test", str(tests)])
    assert result.exit_code == 1
    assert result.stdout.splitlines()[1:] == [
        "  PASS  a both rule is listed under alarms and under tasks",
        "  FAIL  tasks left out",
        "        at 0s, tasks:",
        "          expected: []",
        "          got:      [{rule: warm, device: chiller-1}]",
        "1 passed, 1 failed",
    ]


def test_a_plan_step_in_one_language_loads_shown_in_it_with_a_warning(tmp_path: Path) -> None:
    site = load_site(chiller_site(tmp_path))
    plans = tmp_path / "plans.yaml"
    plans.write_text(
        "plans:\n"
        "  - id: chiller-trip\n"
        "    title: {zh: 冷机跳闸, en: Chiller trip}\n"
        "    steps:\n"
        "      - {id: call, text: {zh: 通知暖通班组}, within: 5m}\n"  # line 5: Chinese only
    )
    plan = load_plans(site, [plans])["chiller-trip"]
    assert plan.steps[0].text.en == "通知暖通班组"
    assert [(w.line, w.field) for w in plan.warnings] == [(5, "plans[0].steps[0].text")]


def test_a_device_or_building_the_site_does_not_have_is_named_at_its_line(tmp_path: Path) -> None:
    """A misspelt id in `devices` left the rule watching nothing, and the check passed it."""
    site = chiller_site(tmp_path)
    rules = tmp_path / "chiller.yaml"
    rules.write_text(
        "rules:\n"
        "  - id: too-warm\n"
        "    title: {zh: 供水温度高, en: supply too warm}\n"
        "    devices:\n"
        "      ids: [chiller-1, chiler-2]\n"  # line 5
        "      buildings: [B9]\n"  # line 6
        "    when: supply_temperature > 12\n"
        "    priority: medium\n"
    )
    code, said = rules_check(site, rules)
    assert code != 0
    assert f"{rules}:5: rules[0].devices.ids[1]: no device 'chiler-2' in this site" in said
    assert f"{rules}:6: rules[0].devices.buildings[0]: no device of this site is in building 'B9'" in said
    rules.write_text(rules.read_text().replace(", chiler-2", "").replace("      buildings: [B9]\n", ""))
    assert rules_check(site, rules)[0] == 0
