"""Emergency plans: the library and site files load with errors that name file, line and field;
instances are opened once per alarm, record who ticked which step when, report steps past their
limit and close; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from facility.bus import Event, LocalBus
from facility.errors import NotFound
from facility.model import now_ns
from facility.site import Site, load_site
from facility.store.ops import OpsStore
from facility.store.plans import PlanStore
from facility.yamlfile import ConfigError
from rules.plans import Plan, PlanRefused, PlanService, load_plans

MINUTE_NS = 60 * 10**9

DRILL = Plan.model_validate(
    {
        "id": "drill",
        "title": {"zh": "演练", "en": "Drill"},
        "steps": [
            {"id": "a", "text": {"zh": "甲", "en": "A"}, "within": "1m"},
            {"id": "b", "text": {"zh": "乙", "en": "B"}, "within": "5m"},
            {"id": "c", "text": {"zh": "丙", "en": "C"}, "within": "1h"},
        ],
    }
)


def events(queue: asyncio.Queue[Event]) -> list[Event]:
    out = []
    while not queue.empty():
        out.append(queue.get_nowait())
    return out


@pytest.fixture
def store(ops_store: OpsStore) -> OpsStore:
    return ops_store


def test_library_has_the_emergencies_an_estate_meets(site: Site) -> None:
    plans = load_plans(site)
    assert {"fire", "flooding", "mains-failure", "elevator-entrapment", "severe-weather"} <= set(plans)
    entrapment = [s.id for s in plans["elevator-entrapment"].steps]
    assert entrapment.index("intercom") < entrapment.index("call-vendor") < entrapment.index("released")
    vendor = next(s for s in plans["elevator-entrapment"].steps if s.id == "vendor-arrived")
    assert vendor.within == 30 * 60  # the maintenance company's statutory arrival time
    for plan in plans.values():
        assert plan.title.zh and plan.title.en
        assert all(s.text.zh and s.text.en and s.within > 0 for s in plan.steps)


def test_site_plans_add_to_the_library_and_replace_by_id(tmp_path: Path) -> None:
    (tmp_path / "plans").mkdir()
    (tmp_path / "plans" / "ours.yaml").write_text(
        "plans:\n"
        "  - id: fire\n"
        "    title: {zh: 本项目火警预案, en: Our fire plan}\n"
        "    steps:\n"
        "      - {id: call, text: {zh: 报警, en: Call 119}, within: 1m}\n"
        "  - id: gas-leak\n"
        "    title: {zh: 燃气泄漏, en: Gas leak}\n"
        "    steps:\n"
        "      - {id: valve, text: {zh: 关阀, en: Close the valve}, within: 5m}\n"
    )
    (tmp_path / "site.yaml").write_text(
        "site: {id: t}\nplans: [plans]\ndevices:\n  - {id: lift-1, profile: elevator, mqtt: {topic: a}}\n"
    )
    plans = load_plans(load_site(tmp_path / "site.yaml"))
    assert plans["fire"].title.en == "Our fire plan" and [s.id for s in plans["fire"].steps] == ["call"]
    assert plans["gas-leak"].steps[0].within == 300
    assert "flooding" in plans


def test_bad_plan_files_name_file_line_and_field(tmp_path: Path, site: Site) -> None:
    shapes = tmp_path / "shapes.yaml"
    shapes.write_text(
        "plans:\n"
        "  - id: fire\n"
        "    title: {zh: 火警}\n"  # line 3: no English title, a warning only (see test_one_language)
        "    steps:\n"
        "      - id: confirm\n"
        "        text: {zh: 确认, en: Confirm}\n"
        "        within: 3 minutes\n"  # line 7
        "      - {id: call, text: {zh: 报警, en: Call}, within: 0s}\n"  # line 8
    )
    twice = tmp_path / "twice.yaml"
    twice.write_text(
        "plans:\n"
        "  - id: flood\n"
        "    title: {zh: 水浸, en: Flood}\n"
        "    steps:\n"
        "      - {id: pumps, text: {zh: 泵, en: Pumps}, within: 5m}\n"
        "      - {id: pumps, text: {zh: 泵, en: Pumps}, within: 10m}\n"  # line 6
    )
    with pytest.raises(ConfigError) as caught:
        load_plans(site, [shapes, twice])
    found = {(p.file, p.line, p.field) for p in caught.value.problems}
    assert found == {
        (str(shapes), 7, "plans[0].steps[0].within"),
        (str(shapes), 8, "plans[0].steps[1].within"),
        (str(twice), 6, "plans[0].steps[1].id"),
    }
    messages = {p.field: p.message for p in caught.value.problems}
    assert "not a duration" in messages["plans[0].steps[0].within"]
    assert "above zero" in messages["plans[0].steps[1].within"]
    assert "appears twice" in messages["plans[0].steps[1].id"]


async def test_one_instance_per_alarm_however_often_it_is_opened(store: OpsStore) -> None:
    bus = LocalBus()
    service = PlanService(PlanStore(store), bus, {"drill": DRILL})
    with bus.subscribe() as queue:
        first, racer = await asyncio.gather(
            service.open("drill", 7, "lift-1", 1000), service.open("drill", 7, "lift-1", 1001)
        )
        again = await service.open("drill", 7, "lift-1", 2000)
        other = await service.open("drill", 8, "lift-2", 3000)
        announced = events(queue)
    assert first.id == racer.id == again.id != other.id
    assert again.opened_at in (1000, 1001) and again.alarm == 7 and again.device == "lift-1"
    assert [s.due_at - again.opened_at for s in again.steps] == [MINUTE_NS, 5 * MINUTE_NS, 60 * MINUTE_NS]
    assert [(e.kind, e.data["id"]) for e in announced] == [("plan", first.id), ("plan", other.id)]
    assert [p.id for p in await service.active()] == [first.id, other.id]
    with pytest.raises(PlanRefused, match="no plan 'nope'"):
        await service.open("nope", 9, "lift-1", 1)


async def test_two_lifts_trapping_at_once_are_two_plans_each_naming_its_lift(repo_root: Path, store: OpsStore) -> None:
    """The library's entrapment plan names its lift, from the site file's device names."""
    site = load_site(repo_root / "sites/demo/site.yaml")
    names = {d.id: d.name for d in site.devices if d.name}
    service = PlanService(PlanStore(store), LocalBus(), load_plans(site), names)
    first = await service.open("elevator-entrapment", 1, "elevator-b1-1", 1000)
    second = await service.open("elevator-entrapment", 2, "elevator-b1-2", 1000)
    assert first.title.zh == f"{names['elevator-b1-1']}困人应急预案"
    assert second.title.en == f"{names['elevator-b1-2']}: lift entrapment"
    assert first.title != second.title


async def test_ticks_record_who_did_what_when_and_the_last_one_closes(store: OpsStore, ops_url: str) -> None:
    bus = LocalBus()
    service = PlanService(PlanStore(store), bus, {"drill": DRILL})
    opened = await service.open("drill", 7, "lift-1", now_ns())
    with bus.subscribe() as queue:
        before = now_ns()
        ticked = await service.tick(opened.id, "b", "wang", "10.0.0.5", "vendor on the way")
        step = ticked.steps[1]
        assert (step.done_by, step.done_from, step.note) == ("wang", "10.0.0.5", "vendor on the way")
        assert before <= step.done_at <= now_ns() and not step.late
        with pytest.raises(PlanRefused, match="already done by wang"):
            await service.tick(opened.id, "b", "li", "10.0.0.6")
        with pytest.raises(PlanRefused, match=r"no step 'z' \(steps: a, b, c\)"):
            await service.tick(opened.id, "z", "li", "10.0.0.6")
        with pytest.raises(NotFound):
            await service.tick(9999, "a", "li", "10.0.0.6")
        await service.tick(opened.id, "a", "li", "10.0.0.6")
        done = await service.tick(opened.id, "c", "li", "10.0.0.6")
        assert [e.data["state"] for e in events(queue)] == ["open", "open", "closed"]
    assert done.state == "closed" and done.closed_by == "li" and done.closed_from == "plan"
    assert await service.active() == []

    reopened = OpsStore(ops_url, site="t")  # the record outlives the process
    kept = await PlanService(PlanStore(reopened), LocalBus(), {}).get(opened.id)
    await reopened.close()
    assert kept is not None and [(s.id, s.done_by) for s in kept.steps] == [
        ("a", "li"),
        ("b", "wang"),
        ("c", "li"),
    ]


async def test_steps_past_their_limit_are_reported_overdue_once(store: OpsStore) -> None:
    bus = LocalBus()
    service = PlanService(PlanStore(store), bus, {"drill": DRILL})
    opened_at = now_ns() - 2 * MINUTE_NS
    opened = await service.open("drill", 7, "lift-1", opened_at)
    shown = await service.get(opened.id)
    assert shown is not None and [s.overdue for s in shown.steps] == [True, False, False]

    with bus.subscribe() as queue:
        reported = await service.check_overdue(opened_at + 6 * MINUTE_NS)
        assert [s.overdue for s in reported[0].steps] == [True, True, False]
        assert await service.check_overdue(opened_at + 7 * MINUTE_NS) == []  # nothing new
        late = await service.tick(opened.id, "a", "wang", "10.0.0.5")
        assert late.steps[0].late and not late.steps[0].overdue
        again = await service.check_overdue(opened_at + 61 * MINUTE_NS)
        assert [s.overdue for s in again[0].steps] == [False, True, True]
        assert [e.data["id"] for e in events(queue)] == [opened.id] * 3


async def test_closing_early_keeps_undone_steps_on_record(store: OpsStore) -> None:
    bus = LocalBus()
    service = PlanService(PlanStore(store), bus, {"drill": DRILL})
    opened = await service.open("drill", 7, "lift-1", now_ns() - 10 * MINUTE_NS)
    await service.tick(opened.id, "a", "wang", "10.0.0.5")
    with bus.subscribe() as queue:
        closed = await service.close(opened.id, "zhao", "10.0.0.9")
        assert [e.data["state"] for e in events(queue)] == ["closed"]
    assert (closed.state, closed.closed_by, closed.closed_from) == ("closed", "zhao", "10.0.0.9")
    assert [(s.done_by, s.overdue) for s in closed.steps] == [("wang", False), (None, False), (None, False)]
    assert await service.check_overdue(now_ns() + 120 * MINUTE_NS) == []  # a closed plan is not chased
    with pytest.raises(PlanRefused, match="already closed by zhao"):
        await service.close(opened.id, "li", "10.0.0.6")
    with pytest.raises(PlanRefused, match="closed by zhao"):
        await service.tick(opened.id, "b", "li", "10.0.0.6")
    assert await service.active() == []
