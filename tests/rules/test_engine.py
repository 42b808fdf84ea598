"""Conditions: pending until `for` has held, active until the clear condition (hysteresis)."""

from __future__ import annotations

from pathlib import Path

import pytest

from facility.model import Quality, Reading
from facility.site import Site, load_site
from facility.yamlfile import ConfigError
from rules.engine import Change, Engine
from rules.ruleset import load_rules
from rules.texts import render
from tests.rules.conftest import RULES

S = 1_000_000_000


def feed(engine: Engine, t: float, quality: Quality = Quality.GOOD, **values: object) -> None:
    engine.handle([Reading("pump-1", k, v, quality, int(t * S)) for k, v in values.items()])  # type: ignore[arg-type]


def make(site: Site) -> tuple[Engine, list[Change]]:
    changes: list[Change] = []
    return Engine(load_rules(site), changes.append), changes


def test_rule_binds_only_matching_devices(site: Site) -> None:
    (rule,) = load_rules(site)
    assert rule.devices == ("pump-1",)
    assert rule.source.endswith("rules.yaml:2")


def test_for_duration_must_hold_before_the_alarm(site: Site) -> None:
    engine, changes = make(site)
    feed(engine, 0, running=True, outlet_pressure=0.2)
    feed(engine, 4, outlet_pressure=0.2)
    assert changes == []
    feed(engine, 5, outlet_pressure=0.21)
    assert [(c.device, c.active, c.ts) for c in changes] == [("pump-1", True, 5 * S)]


def test_a_blip_shorter_than_for_raises_nothing(site: Site) -> None:
    engine, changes = make(site)
    feed(engine, 0, running=True, outlet_pressure=0.2)
    feed(engine, 3, outlet_pressure=0.4)
    feed(engine, 4, outlet_pressure=0.2)
    feed(engine, 8, outlet_pressure=0.2)
    assert changes == []  # the timer restarted at 4 s


def test_tick_promotes_without_new_readings(site: Site) -> None:
    engine, changes = make(site)
    feed(engine, 0, running=True, outlet_pressure=0.2)
    engine.tick(4 * S)
    assert changes == []
    engine.tick(5 * S)
    assert len(changes) == 1 and changes[0].active


def test_clear_needs_the_hysteresis_band(site: Site) -> None:
    engine, changes = make(site)
    feed(engine, 0, running=True, outlet_pressure=0.2)
    feed(engine, 5, outlet_pressure=0.2)
    feed(engine, 6, outlet_pressure=0.27)  # above the raise threshold, below clear: stays active
    assert len(changes) == 1
    feed(engine, 7, outlet_pressure=0.31)
    assert [c.active for c in changes] == [True, False]


@pytest.mark.parametrize("quality", [Quality.BAD, Quality.STALE])
def test_bad_quality_neither_raises_nor_clears(site: Site, quality: Quality) -> None:
    engine, changes = make(site)
    feed(engine, 0, running=True, outlet_pressure=0.2)
    feed(engine, 5, outlet_pressure=0.2)
    feed(engine, 6, quality, outlet_pressure=None)
    feed(engine, 20, quality, outlet_pressure=None)
    assert [(c.active, c.suppressed) for c in changes] == [(True, False)]


def test_restored_condition_can_clear_after_restart(site: Site) -> None:
    engine, changes = make(site)
    engine.restore([("low-pressure", "pump-1")])
    feed(engine, 0, running=True, outlet_pressure=0.35)
    assert [c.active for c in changes] == [False]


def test_alarm_text_shows_values_it_names(site: Site) -> None:
    engine, changes = make(site)
    feed(engine, 0, running=True, outlet_pressure=0.2)
    feed(engine, 5, outlet_pressure=0.2)
    values = {**changes[0].values, "device_name": "P1"}
    assert render(changes[0].rule.spec.title.en, values) == "P1: low pressure 0.20"


def test_render_never_reaches_into_objects() -> None:
    assert render("{device_name.__class__}", {"device_name": "x"}) == "{device_name.__class__}"


def test_bad_rule_file_names_line_and_field(site: Site, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        RULES.replace("priority: high", "priority: urgent").replace("outlet_pressure < 0.25", "outlet_presure < 0.25")
    )
    with pytest.raises(ConfigError) as caught:
        load_rules(site, [bad])
    found = {(p.line, p.field) for p in caught.value.problems}
    assert (8, "rules[0].priority") in found


def test_misspelt_point_in_a_rule_names_its_line(site: Site, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(RULES.replace("outlet_pressure < 0.25", "outlet_presure < 0.25"))
    with pytest.raises(ConfigError) as caught:
        load_rules(site, [bad])
    (problem,) = caught.value.problems
    assert (problem.line, problem.field) == (5, "rules[0].when")
    assert "unknown point 'outlet_presure'" in problem.message


def test_library_rules_load_for_the_demo(repo_root: Path) -> None:
    site = load_site(repo_root / "sites/demo/site.yaml")
    rules = {r.id: r for r in load_rules(site)}
    assert rules["elevator-entrapment"].spec.priority == "emergency"
    assert set(rules["booster-pump-low-pressure"].devices) == {"pump-b2-1", "pump-b2-2", "pump-b2-3"}


def readings_at(t: float, **values: object) -> list[Reading]:
    return [Reading("pump-1", k, v, Quality.GOOD, int(t * S)) for k, v in values.items()]  # type: ignore[arg-type]


def test_a_fault_that_comes_and_goes_inside_one_batch_is_seen(site: Site) -> None:
    """A backlog delivered at once (after a reconnect, say) holds the whole story; the alarm
    must be raised and cleared as the readings say, not judged on the batch's last values."""
    engine, changes = make(site)
    batch = [
        *readings_at(0, running=True, outlet_pressure=0.2),
        *readings_at(6, outlet_pressure=0.2),
        *readings_at(7, outlet_pressure=0.5),
    ]
    engine.handle(batch)
    assert [(c.active, c.ts) for c in changes] == [(True, 6 * S), (False, 7 * S)]


def test_a_snapshot_is_judged_whole_never_half_updated(site: Site) -> None:
    """One message sets `running` and `outlet_pressure` together: evaluating after the first
    of them, with the other still old, would raise a false alarm."""
    engine, changes = make(site)
    engine.handle(readings_at(0, running=False, outlet_pressure=0.1))
    engine.handle([*readings_at(1, running=True, outlet_pressure=0.6), *readings_at(9, outlet_pressure=0.6)])
    assert changes == []


def rule_file(tmp_path: Path, text: str, name: str = "rules.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


FIRE = """\
rules:
  - id: fire
    title: {zh: "{device_name} 火警", en: "{device_name}: fire"}
    devices: {types: [fire_panel]}
    when: zone_3_state == "fire"
    priority: emergency
"""


def test_a_function_used_wrongly_names_its_line_and_field(site: Site, tmp_path: Path) -> None:
    bad = rule_file(tmp_path, RULES.replace("running and outlet_pressure < 0.25", "rate(outlet_pressure) > 0.1"))
    with pytest.raises(ConfigError) as caught:
        load_rules(site, [bad])
    (problem,) = caught.value.problems
    assert (problem.file, problem.line, problem.field) == (str(bad), 5, "rules[0].when")
    assert "rate() takes 2 arguments: write rate(point, window)" in problem.message


def test_an_unknown_suppressing_rule_names_its_line(site: Site, tmp_path: Path) -> None:
    single = rule_file(tmp_path, RULES + "    suppressed_by: {rule: fire, scope: building}\n", "a.yaml")
    entries = "    suppressed_by:\n      - {rule: low-pressure}\n      - {rule: nope}\n"
    listed = rule_file(tmp_path, RULES.replace("low-pressure", "other") + entries, "b.yaml")
    with pytest.raises(ConfigError) as caught:
        load_rules(site, [single, listed])
    found = {(p.file, p.line, p.field, p.message) for p in caught.value.problems}
    assert found == {
        (str(single), 9, "rules[0].suppressed_by.rule", "no rule 'fire' is loaded for this site"),
        (str(listed), 11, "rules[0].suppressed_by[1].rule", "no rule 'nope' is loaded for this site"),
    }
    itself = rule_file(tmp_path, RULES + "    suppressed_by: {rule: low-pressure}\n", "c.yaml")
    with pytest.raises(ConfigError, match=r"rules\[0\]\.suppressed_by\.rule: a rule cannot be suppressed by itself"):
        load_rules(site, [itself])


def test_a_suppressing_rule_may_come_from_another_file(site: Site, tmp_path: Path) -> None:
    lighting = rule_file(tmp_path, RULES + "    suppressed_by: {rule: fire, scope: building}\n", "site.yaml")
    rules = {r.id: r for r in load_rules(site, [rule_file(tmp_path, FIRE, "library.yaml"), lighting])}
    (suppressor,) = rules["low-pressure"].spec.suppressed_by
    assert (suppressor.rule, suppressor.scope) == ("fire", "building")


def test_outcomes_default_to_an_alarm_and_a_task_kind_follows_the_priority(site: Site, tmp_path: Path) -> None:
    text = (
        FIRE.replace(
            "priority: emergency", "priority: emergency\n    outcome: both\n    task: {team: security}\n    plan: fire"
        )
        + RULES.replace("rules:\n", "").replace("priority: high", "priority: high\n    outcome: task")
        + FIRE.replace("rules:\n", "").replace("id: fire", "id: alarm-only")
        + FIRE.replace("rules:\n", "")
        .replace("id: fire", "id: inspect")
        .replace(
            "priority: emergency",
            "priority: low\n    outcome: task\n"
            "    task: {kind: inspection, team: electricians, sla: 4h, checklist: [check the panel]}",
        )
    )
    rules = {r.id: r.spec for r in load_rules(site, [rule_file(tmp_path, text)])}
    assert (rules["fire"].outcome, rules["fire"].plan, rules["fire"].task and rules["fire"].task.kind) == (
        "both",
        "fire",
        "emergency",
    )
    assert rules["low-pressure"].task is not None and rules["low-pressure"].task.kind == "repair"
    assert (rules["alarm-only"].outcome, rules["alarm-only"].task) == ("alarm", None)
    task = rules["inspect"].task
    assert task is not None
    assert (task.kind, task.team, task.sla) == ("inspection", "electricians", 4 * 3600.0)
    assert task.checklist == ["check the panel"]


def test_a_plan_needs_an_emergency_and_a_task_needs_its_outcome(site: Site, tmp_path: Path) -> None:
    bad = rule_file(tmp_path, RULES + "    plan: fire\n    task: {team: plumbers}\n")
    with pytest.raises(ConfigError) as caught:
        load_rules(site, [bad])
    found = {(p.line, p.field) for p in caught.value.problems}
    assert found == {(9, "rules[0].plan"), (10, "rules[0].task")}
    assert "priority emergency" in str(caught.value)


def test_a_plan_the_site_does_not_have_is_named_with_the_known_ones(site: Site, tmp_path: Path) -> None:
    text = RULES.replace("priority: high", "priority: emergency") + "    plan: flood\n"
    with pytest.raises(ConfigError) as caught:
        load_rules(site, [rule_file(tmp_path, text)])
    (problem,) = caught.value.problems
    assert (problem.line, problem.field) == (9, "rules[0].plan")
    assert "no emergency plan 'flood'" in problem.message and "flooding" in problem.message
    load_rules(site, [rule_file(tmp_path, text.replace("plan: flood", "plan: flooding"))])
