"""The task service turns rule conditions and desk requests into work orders with the right team,
vendor, SLA and checklist, announces every change, and measures vendors against their contracts."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from facility.bus import Event, LocalBus
from facility.errors import Invalid
from facility.model import now_ns
from facility.site import load_site
from facility.store.ops import OpsStore
from facility.store.tasks import TaskError, TaskNotFound, TaskStore
from facility.vocabulary import Text
from rules.attachments import AttachmentRefused
from rules.engine import Change
from rules.ruleset import Rule, load_rules
from rules.tasks import TaskService, UnknownAssignee

MIN = 60 * 10**9
HOUR = 60 * MIN

RULES = """\
rules:
  - id: low-pressure
    title: {zh: "{device_name} 压力低", en: "{device_name}: low pressure {outlet_pressure:.2f}"}
    message: {zh: "{building} {room} 压力低", en: "{building} {room}: pressure is low"}
    devices: {types: [booster_pump]}
    when: running and outlet_pressure < 0.25
    clear: outlet_pressure >= 0.30
    priority: high
  - id: entrapment
    title: {zh: "{device_name} 困人", en: "{device_name}: passengers trapped"}
    devices: {types: [elevator]}
    when: not moving and not in_door_zone and alarm_button
    priority: emergency
"""

SITE = """\
site: {id: t}
use_rule_library: false
rules: [rules.yaml]
api: {max_attachment_kb: 1}
vendors:
  - {id: lifts-co, name: 电梯公司, arrive_within: 30m}
  - {id: pumps-co, name: 水泵公司}
people:
  - {id: li, name: 李工 / Engineer Li, team: water}
  - {id: zhao, name: 赵师傅 / Master Zhao}
devices:
  - id: pump-1
    name: P1
    profile: booster_pump
    vendor: pumps-co
    location: {building: B2, room: pump room}
    modbus: {port: 1502}
  - {id: lift-1, name: Lift 1, profile: elevator, vendor: lifts-co, mqtt: {topic: a}}
"""


@dataclasses.dataclass(frozen=True)
class TaskOutcome:
    """The shape of a rule's `task:` (kind, team, sla in seconds, checklist lines)."""

    kind: str | None = None
    team: str | None = None
    sla: float | None = None
    checklist: tuple[str, ...] = ()


def with_outcome(rule: Rule, outcome: str, task: TaskOutcome | None = None) -> Rule:
    """Set `outcome` and `task` on a loaded rule: RuleSpec does not read them from YAML yet."""
    return dataclasses.replace(rule, spec=rule.spec.model_copy(update={"outcome": outcome, "task": task}))


@dataclasses.dataclass
class Desk:
    service: TaskService
    events: asyncio.Queue[Event]
    rules: dict[str, Rule]

    def announced(self) -> list[Event]:
        out = []
        while not self.events.empty():
            out.append(self.events.get_nowait())
        return out


@pytest.fixture
async def desk(tmp_path: Path) -> AsyncIterator[Desk]:
    (tmp_path / "rules.yaml").write_text(RULES)
    (tmp_path / "site.yaml").write_text(SITE)
    site = load_site(tmp_path / "site.yaml")
    ops = OpsStore(f"sqlite+aiosqlite:///{tmp_path / 'ops.db'}", site="t")
    await ops.start()
    bus = LocalBus()
    with bus.subscribe() as events:
        service = TaskService(site, TaskStore(ops), bus, tmp_path / "attachments")
        yield Desk(service, events, {r.id: r for r in load_rules(site)})
    await ops.close()


async def test_a_rule_task_takes_team_sla_and_checklist_from_the_rule_and_the_device_vendor(desk: Desk) -> None:
    task_outcome = TaskOutcome(team="water", sla=2 * 3600, checklist=("读出口压力表", "check the VFD"))
    rule = with_outcome(desk.rules["low-pressure"], "both", task_outcome)
    values = {"running": True, "outlet_pressure": 0.18}
    ts = now_ns()

    task = await desk.service.from_rule(Change(rule, "pump-1", True, ts, values))
    assert task is not None
    assert task.title == Text("P1 压力低", "P1: low pressure 0.18")
    assert task.description.en == "B2 pump room: pressure is low"
    assert (task.kind, task.priority, task.team, task.vendor) == ("repair", "high", "water", "pumps-co")
    assert task.due == ts + 2 * HOUR
    assert [i.text.en for i in task.checklist] == ["读出口压力表", "check the VFD"]
    assert [(e.kind, e.data) for e in desk.announced()] == [("task", task.as_json())]

    assert await desk.service.from_rule(Change(rule, "pump-1", False, ts + 1, values)) is None
    cleared = await desk.service.condition_cleared("low-pressure", "pump-1", ts + 1)
    assert cleared is not None and not cleared.condition_active
    recurred = await desk.service.from_rule(Change(rule, "pump-1", True, ts + 2, values))
    assert recurred is not None and (recurred.id, recurred.recurrences) == (task.id, 1)
    assert [e.data["recurrences"] for e in desk.announced()] == [0, 1]
    assert len(await desk.service.list()) == 1


async def test_without_an_sla_the_priority_sets_the_due_time(desk: Desk) -> None:
    ts = now_ns()
    trapped = with_outcome(desk.rules["entrapment"], "task")
    task = await desk.service.from_rule(Change(trapped, "lift-1", True, ts, {}))
    assert task is not None
    assert (task.kind, task.vendor, task.due) == ("emergency", "lifts-co", ts + 30 * MIN)

    alarm_only = desk.rules["low-pressure"]
    assert await desk.service.from_rule(Change(alarm_only, "pump-1", True, ts, {"outlet_pressure": 0.1})) is None
    assert [t.id for t in await desk.service.list()] == [task.id]

    for priority, hours in (("high", 4), ("medium", 24), ("low", 72)):
        made = await desk.service.create(title=Text("巡检", "round"), kind="inspection", by="wang", priority=priority)
        assert made.due - made.created_at == hours * HOUR


async def test_a_complaint_keeps_the_time_promised_and_shows_when_it_is_late(desk: Desk) -> None:
    promised = now_ns() - 1  # the time promised to the resident has just passed
    complaint = await desk.service.create(
        title=Text("1号梯异响", "Lift 1 makes a noise"),
        description="住户 3-1201 来电",
        kind="complaint",
        priority="high",
        device="lift-1",
        due=promised,
        by="desk-wang",
        source="10.0.0.5",
    )
    assert (complaint.due, complaint.vendor, complaint.overdue) == (promised, "lifts-co", True)
    assert complaint.source == {"kind": "manual", "by": "desk-wang"}
    assert complaint.description == Text("住户 3-1201 来电", "住户 3-1201 来电")
    on_time = await desk.service.create(title=Text("换灯", "replace a lamp"), kind="repair", by="wang")
    assert [t.id for t in await desk.service.list(overdue=True)] == [complaint.id]
    assert [t.id for t in await desk.service.list(kind="repair")] == [on_time.id]
    assert [t.id for t in await desk.service.list(vendor="lifts-co", status=["open"])] == [complaint.id]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "fix"}, "kind: 'fix' is not one of inspection, repair, preventive, emergency, complaint"),
        ({"priority": "urgent"}, "priority: 'urgent' is not one of emergency, high, medium, low"),
        ({"device": "pump-9"}, "device: no device 'pump-9' in this site"),
        ({"vendor": "acme"}, "vendor: no vendor 'acme' in this site"),
        ({"title": Text("", " ")}, "title: a task needs a title"),
    ],
)
async def test_a_bad_request_names_the_field_and_creates_nothing(
    desk: Desk, fields: dict[str, object], message: str
) -> None:
    request: dict[str, object] = {"title": Text("漏水", "leak"), "kind": "complaint", "by": "wang", **fields}
    with pytest.raises(Invalid) as refused:
        await desk.service.create(**request)  # type: ignore[arg-type]
    assert str(refused.value) == message
    assert await desk.service.list() == [] and desk.announced() == []


async def test_every_change_is_announced_and_a_refused_one_is_not(desk: Desk) -> None:
    made = await desk.service.create(
        title=Text("水箱巡检", "tank round"), kind="inspection", by="wang", checklist=["液位", "水质"]
    )
    tid = made.id
    await desk.service.assign(tid, "li", "wang", "10.0.0.5")
    await desk.service.set_status(tid, "in_progress", "li", "app")
    await desk.service.tick(tid, 0, "li", "app")
    await desk.service.add_note(tid, "液位正常", "li", "app")
    await desk.service.tick(tid, 1, "li", "app")
    with pytest.raises(TaskError, match="cannot go from in_progress to verified"):
        await desk.service.set_status(tid, "verified", "wang")
    with pytest.raises(Invalid, match="status: 'done' is not one of"):
        await desk.service.set_status(tid, "done", "wang")
    await desk.service.set_status(tid, "resolved", "li", "app")
    await desk.service.set_status(tid, "verified", "wang", "10.0.0.5")

    events = desk.announced()
    assert {e.kind for e in events} == {"task"}
    assert [(e.data["status"], e.data["assignee"]) for e in events] == [
        ("open", None),
        ("assigned", "li"),
        ("in_progress", "li"),
        ("in_progress", "li"),
        ("in_progress", "li"),
        ("in_progress", "li"),
        ("resolved", "li"),
        ("verified", "li"),
    ]
    assert events[3].data["checklist"][0]["done"] and events[4].data["notes"][0]["text"] == "液位正常"
    detail = await desk.service.get(tid)
    assert detail is not None and len(detail.history) == 8


async def test_a_task_goes_only_to_the_site_people_their_teams_or_its_vendors(desk: Desk) -> None:
    assert [(a.id, a.kind, a.name) for a in desk.service.assignees()] == [
        ("li", "person", Text("李工", "Engineer Li")),
        ("zhao", "person", Text("赵师傅", "Master Zhao")),
        ("water", "team", Text("water", "water")),
        ("lifts-co", "vendor", Text.same("电梯公司")),
        ("pumps-co", "vendor", Text.same("水泵公司")),
    ]
    made = await desk.service.create(title=Text("漏水", "leak"), kind="complaint", by="wang")
    desk.announced()
    with pytest.raises(UnknownAssignee) as refused:
        await desk.service.assign(made.id, "the plumber", "wang")
    assert str(refused.value) == (
        "assignee: 'the plumber' is none of the site's people, teams or vendors (li, zhao, water, lifts-co, pumps-co)"
    )
    still = await desk.service.get(made.id)
    assert still is not None and (still.status, still.assignee) == ("open", None)
    assert desk.announced() == []
    for who in ("zhao", "water", "pumps-co"):
        assert (await desk.service.assign(made.id, who, "wang")).assignee == who


async def test_verifying_over_an_open_checklist_needs_a_reason(desk: Desk) -> None:
    made = await desk.service.create(
        title=Text("水箱巡检", "tank round"), kind="inspection", by="wang", checklist=["液位", "水质"]
    )
    tid = made.id
    await desk.service.assign(tid, "li", "wang")
    await desk.service.set_status(tid, "in_progress", "li")
    await desk.service.set_status(tid, "resolved", "li")
    with pytest.raises(TaskError, match="2 checklist item\\(s\\) not done: 液位; 水质"):
        await desk.service.set_status(tid, "verified", "wang")
    verified = await desk.service.set_status(tid, "verified", "zhou", override="水质 sampled by the lab")
    assert verified.status == "verified"
    detail = await desk.service.get(tid)
    assert detail is not None and detail.history[-2].detail == "水质 sampled by the lab (open: 液位; 水质)"


JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 200  # the start of a phone's photo


async def test_a_photo_is_kept_in_a_file_recorded_on_its_task_and_bad_uploads_are_refused(
    desk: Desk, tmp_path: Path
) -> None:
    made = await desk.service.create(title=Text("漏水", "leak"), kind="complaint", by="wang")
    desk.announced()
    photo = await desk.service.attach(made.id, "leak.jpg", "image/jpeg", JPEG, "li", "10.0.0.5")
    assert (photo.name, photo.content_type, photo.size, photo.added_by) == ("leak.jpg", "image/jpeg", len(JPEG), "li")
    assert desk.service.attachment_path(photo).read_bytes() == JPEG
    assert desk.service.attachment_path(photo).parent == tmp_path / "attachments"
    report = await desk.service.attach(made.id, "report.pdf", "application/pdf", b"%PDF-1.7\n", "li")
    assert await desk.service.attachments(made.id) == [photo, report]
    assert [(e.kind, e.data["id"]) for e in desk.announced()] == [("task", made.id)] * 2
    detail = await desk.service.get(made.id)
    assert detail is not None
    assert [h.detail for h in detail.history if h.action == "attached"] == [
        f"leak.jpg (image/jpeg, {len(JPEG)} bytes)",
        "report.pdf (application/pdf, 9 bytes)",
    ]

    refusals = [
        ("note.txt", "text/plain", b"hello", 415, "content type: 'text/plain' is not one a task takes"),
        ("fake.jpg", "image/jpeg", b"<script>", 415, "content type: the bytes of 'fake.jpg' are not image/jpeg"),
        ("big.jpg", "image/jpeg", JPEG * 10, 413, "file: 2040 bytes is over the 1 KiB a task takes"),
    ]
    for name, kind, data, status, message in refusals:
        with pytest.raises(AttachmentRefused) as refused:
            await desk.service.attach(made.id, name, kind, data, "li")
        assert (refused.value.status, str(refused.value).partition(" (")[0]) == (status, message)
    with pytest.raises(TaskNotFound):
        await desk.service.attach(made.id + 1, "leak.jpg", "image/jpeg", JPEG, "li")
    assert len(await desk.service.attachments(made.id)) == 2
    assert sorted(p.name for p in (tmp_path / "attachments").iterdir()) == [str(photo.id), str(report.id)]
    assert desk.announced() == []


async def test_vendor_sla_measures_arrival_against_the_vendor_contract(desk: Desk) -> None:
    start = now_ns()
    trapped = with_outcome(desk.rules["entrapment"], "task")
    raised = await desk.service.from_rule(Change(trapped, "lift-1", True, start - 40 * MIN, {}))
    assert raised is not None
    complaint = await desk.service.create(title=Text("梯门", "lift door"), kind="complaint", device="lift-1", by="w")
    for task in (raised, complaint):
        await desk.service.assign(task.id, "lifts-co", "wang")
        await desk.service.set_status(task.id, "in_progress", "lifts-co")
    await desk.service.create(title=Text("泵", "pump"), kind="repair", device="pump-1", by="w")

    report = await desk.service.vendor_sla(start - HOUR, now_ns() + 1)
    assert set(report) == {"lifts-co"}  # pumps-co has no contractual arrival time
    lifts = report["lifts-co"]
    assert (lifts.limit_ns, lifts.tasks, lifts.met, lifts.missed, lifts.open_past_limit) == (30 * MIN, 2, 1, 1, 0)
    assert lifts.worst_response_ns is not None and lifts.worst_response_ns >= 40 * MIN


RECURRENCES = 40  # cycles of clear and recur while the desk reads: enough for reads to fall between writes


async def test_a_task_read_while_it_recurs_shows_its_count_and_its_history_together(
    tmp_path: Path, ops_url: str
) -> None:
    """The desk reads a task while its condition clears and recurs. Each
    read is one moment of the task: its recurrence count is the number of `recurred` entries in
    its history, never a count from before the history it comes with."""
    (tmp_path / "rules.yaml").write_text(RULES)
    (tmp_path / "site.yaml").write_text(SITE)
    site = load_site(tmp_path / "site.yaml")
    ops = OpsStore(ops_url, site="t")
    await ops.start()
    try:
        service = TaskService(site, TaskStore(ops), LocalBus())
        rule = with_outcome(load_rules(site)[0], "both", TaskOutcome(team="water"))
        values = {"running": True, "outlet_pressure": 0.18}
        ts = now_ns()
        task = await service.from_rule(Change(rule, "pump-1", True, ts, values))
        assert task is not None
        recurring = True
        reads: list[tuple[int, int]] = []  # (recurrences, `recurred` entries) of each read

        async def recur() -> None:
            nonlocal recurring
            for n in range(1, RECURRENCES + 1):
                await service.condition_cleared("low-pressure", "pump-1", ts + 2 * n - 1)
                await service.from_rule(Change(rule, "pump-1", True, ts + 2 * n, values))
            recurring = False

        async def read_alone() -> None:
            while recurring:
                found = await service.get(task.id)
                assert found is not None
                reads.append((found.recurrences, sum(h.action == "recurred" for h in found.history)))

        await asyncio.gather(recur(), read_alone(), read_alone())
        assert reads and all(count == entries for count, entries in reads), [r for r in reads if r[0] != r[1]]
        final = await service.get(task.id)
        assert final is not None and final.recurrences == RECURRENCES
    finally:
        await ops.close()


async def test_changes_to_a_task_at_once_are_each_announced_with_all_the_changes_before_it(
    tmp_path: Path, ops_url: str
) -> None:
    """A note is added from the desk while the task's condition clears and recurs. Each change is
    announced with the task as it made it: it saw every change recorded before it, so of any two
    announcements one has all that the other has (notes and recurrences alike)."""
    (tmp_path / "rules.yaml").write_text(RULES)
    (tmp_path / "site.yaml").write_text(SITE)
    site = load_site(tmp_path / "site.yaml")
    ops = OpsStore(ops_url, site="t")
    await ops.start()
    try:
        bus = LocalBus()
        service = TaskService(site, TaskStore(ops), bus)
        rule = with_outcome(load_rules(site)[0], "both", TaskOutcome(team="water"))
        values = {"running": True, "outlet_pressure": 0.18}
        ts = now_ns()
        with bus.subscribe() as events:
            task = await service.from_rule(Change(rule, "pump-1", True, ts, values))
            assert task is not None

            async def recur() -> None:
                for n in range(1, RECURRENCES + 1):
                    await service.condition_cleared("low-pressure", "pump-1", ts + 2 * n - 1)
                    await service.from_rule(Change(rule, "pump-1", True, ts + 2 * n, values))

            async def note() -> None:
                for n in range(RECURRENCES):
                    await service.add_note(task.id, f"note {n}", "duty", "desk")

            await asyncio.gather(recur(), note())
            announced = []
            while not events.empty():
                data = events.get_nowait().data
                announced.append((len(data["notes"]), data["recurrences"]))
        # Pairs of which one saw a note the other did not, and the other a recurrence the first did not.
        apart = [(a, b) for a in announced for b in announced if a[0] < b[0] and a[1] > b[1]]
        assert not apart, apart[:5]
    finally:
        await ops.close()
