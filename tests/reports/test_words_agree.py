"""The reports and the duty desk name every priority, alarm state, task kind, task status and plant
system alike, in both languages: an emergency-response task is 应急 on paper as on the page, and
its priority 紧急. The desk's words are what the browser ends with: its own, read from
api/desk/i18n.js as text, and the kernel's table (facility/words.py) as GET /api/v1/words serves it,
filed under the keys that i18n.js's GROUPS give each group."""

from __future__ import annotations

import ast
import asyncio
import io
import re
from pathlib import Path

import pytest
from openpyxl import load_workbook

from api.routes.words import served_words
from facility import words as table
from facility.model import AlarmState, Priority
from facility.profile import BUILTIN_DIR, load_profiles
from facility.records import TaskKind, TaskStatus
from facility.store.users import Role, User
from facility.vocabulary import AlarmAction, Text
from facility.words import ACTIONS, ALARM_STATES, NAMES, PRIORITIES, SYSTEMS, TASK_KINDS, TASK_STATUSES, WORDS
from reports import Format, Lang, Report, render
from reports.model import Column, Row, Section, text

I18N = Path(__file__).parents[2] / "api" / "desk" / "i18n.js"
_ENTRY = re.compile(r'"?([\w-]+)"?: "((?:[^"\\]|\\.)*)"')


_GROUP = re.compile(r'^  (\w+): \["([^"]*)", (true|false)\],$', re.MULTILINE)
_ACTORS = re.compile(r"const ACTORS = new Set\(\[([^\]]*)\]\)")


def desk_words() -> dict[str, dict[str, str]]:
    """The desk's words by language: the `zh: {...}` and `en: {...}` blocks of TEXT in i18n.js, and
    the served table filed as its `useWords` files it (English capitalised where GROUPS says so)."""
    text = I18N.read_text(encoding="utf-8")
    body = text[text.index("const TEXT = {") :]
    zh, en = body.index("\n  zh: {"), body.index("\n  en: {")
    end = body.index("\n};", en)
    desk = {"zh": dict(_ENTRY.findall(body[zh:en])), "en": dict(_ENTRY.findall(body[en:end]))}
    served = asyncio.run(served_words(User("viewer-1", Role.VIEWER)))
    actors = set(re.findall(r'"([^"]+)"', _ACTORS.findall(text)[0]))
    filed = [(key, served[group], capital == "true") for group, key, capital in _GROUP.findall(text)]
    filed += [("actor_{}" if id_ in actors else "team_{}", {id_: w}, False) for id_, w in served["names"].items()]
    for key, group, capitalised in filed:
        for id_, words in group.items():
            name = key.format(id_.replace(" ", "_"))
            desk["zh"][name] = words["zh"]
            desk["en"][name] = words["en"][:1].upper() + words["en"][1:] if capitalised else words["en"]
    return desk


DESK = desk_words()
GROUPS = [  # (what the group names, its words in facility/words.py, the desk's key of an id, every id)
    ("priority", PRIORITIES, "{}", [p.value for p in Priority]),
    ("alarm state", ALARM_STATES, "state_{}", [s.value for s in AlarmState]),
    ("task kind", TASK_KINDS, "kind_{}", [k.value for k in TaskKind]),
    ("task status", TASK_STATUSES, "status_{}", [s.value for s in TaskStatus]),
]


def test_the_desk_keeps_no_copy_of_the_table() -> None:
    """i18n.js names none of the ids the table names under the keys it files them: one table."""
    text = I18N.read_text(encoding="utf-8")
    body = text[text.index("const TEXT = {") : text.index("\n};")]
    own = {key for key, _ in _ENTRY.findall(body)}
    for key, group in [("{}", PRIORITIES), ("state_{}", ALARM_STATES), ("kind_{}", TASK_KINDS)]:
        assert not {key.format(id_) for id_ in group} & own, f"i18n.js keeps its own {key} words"
    assert not {f"status_{id_}" for id_ in TASK_STATUSES} & own
    assert not {f"system_{id_}" for id_ in SYSTEMS} & own
    assert not {f"taskAction_{a.replace(' ', '_')}" for a in table.TASK_ACTIONS} & own
    assert not {f"history_{a.replace(' ', '_')}" for a in {**table.ALARM_ACTIONS, **table.DEVICE_ACTIONS}} & own
    assert not {f"team_{id_}" for id_ in NAMES} & own


@pytest.mark.parametrize(("group", "words", "key", "ids"), GROUPS, ids=[g[0] for g in GROUPS])
def test_reports_and_desk_give_every_id_the_same_words(
    group: str, words: dict[str, Text], key: str, ids: list[str]
) -> None:
    assert sorted(words) == sorted(ids), f"facility/words.py names another set of {group}s"
    for id_ in ids:
        desk = (DESK["zh"].get(key.format(id_)), DESK["en"].get(key.format(id_)))
        assert desk[0] == words[id_].zh, f"{group} {id_}: the desk says {desk[0]}, reports {words[id_].zh}"
        assert (desk[1] or "").casefold() == words[id_].en.casefold(), f"{group} {id_} in English"


def test_the_task_kind_emergency_is_not_the_priority() -> None:
    assert (TASK_KINDS["emergency"].zh, PRIORITIES["emergency"].zh) == ("应急", "紧急")
    assert (DESK["zh"]["kind_emergency"], DESK["zh"]["emergency"]) == ("应急", "紧急")


def test_the_systems_the_desk_names_read_as_in_reports() -> None:
    named = {k.removeprefix("system_") for k in DESK["zh"] if k.startswith("system_")}
    profiles = {p.system for p in load_profiles([BUILTIN_DIR]).values()}
    assert profiles <= named <= set(SYSTEMS)
    for system in named:
        assert DESK["zh"][f"system_{system}"] == SYSTEMS[system].zh, system
        assert DESK["en"][f"system_{system}"].casefold() == SYSTEMS[system].en.casefold(), system


def _texts(report: Report, fmt: Format, lang: Lang) -> str:
    """The report as `fmt` in `lang`, its texts joined by `|`: the tags of HTML and the sheets of
    Excel gone."""
    shown = render(report, fmt, lang)
    if isinstance(shown, bytes):
        book = load_workbook(io.BytesIO(shown))
        return "|".join(str(c.value) for sheet in book.worksheets for row in sheet.iter_rows() for c in row)
    return re.sub(r"<[^>]*>", "|", shown) if fmt == "html" else shown


@pytest.mark.parametrize("fmt", ["html", "md", "csv", "xlsx"])
def test_a_column_of_task_kinds_says_yingji_beside_the_priority_jinji(fmt: Format) -> None:
    """The briefing's, monthly report's and task lists' kind columns are of kind `task_kind`."""
    report = Report("briefing", text("晨会简报", "Briefing"), "t", "", "Asia/Shanghai", 0, 1, 1, None, None)
    columns = [
        Column("kind", text("类型", "Kind"), "task_kind"),
        Column("priority", text("优先级", "Priority"), "word"),
    ]
    row: Row = {"kind": "emergency", "priority": "emergency"}
    report.sections.append(Section("tasks", text("工单", "Tasks"), columns=columns, rows=[row]))
    assert re.search(r"应急[|,\s]+紧急", _texts(report, fmt, "zh"))
    assert re.search(r"emergency[|,\s]+emergency", _texts(report, fmt, "en"))


def _task_store_actions() -> set[str]:
    """The actions the task store writes into a task's history: the third argument of its `_record` calls."""
    tree = ast.parse(TASK_STORE.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "_record":
            action = node.args[2]
            values = [action.body, action.orelse] if isinstance(action, ast.IfExp) else [action]
            found |= {v.value for v in values if isinstance(v, ast.Constant)}
    return found


TASK_STORE = Path(__file__).parents[2] / "facility" / "store" / "tasks.py"
TASK_ACTIONS = sorted(_task_store_actions())


def test_the_task_store_writes_the_actions_it_is_known_to() -> None:
    assert {"created", "recurred", "condition cleared", "status", "ticked", "unticked", "note"} <= set(TASK_ACTIONS)
    assert {"assigned", "checklist overridden", "attached"} <= set(TASK_ACTIONS)


@pytest.mark.parametrize("action", TASK_ACTIONS)
def test_a_tasks_history_reads_alike_in_reports_and_on_the_desk(action: str) -> None:
    """The handover lists task history as the desk's task card does: 创建工单 on both, not 创建 in one;
    every action the store writes has its words (派单, 强制验收 and 上传附件 were the desk's alone)."""
    key = f"taskAction_{action.replace(' ', '_')}"
    assert action in table.TASK_ACTIONS, f"the task store writes {action!r}, which facility/words.py does not name"
    assert (DESK["zh"][key], DESK["en"][key]) == (ACTIONS[action].zh, ACTIONS[action].en)


@pytest.mark.parametrize("action", [a.value for a in AlarmAction])
def test_an_alarms_history_reads_alike_in_reports_and_on_the_desk(action: str) -> None:
    """The desk's alarm card and the handover's history column say what was done alike: an alarm
    was 确认 (acknowledged) in both, where its state is 已确认."""
    key = f"history_{action.replace(' ', '_')}"
    assert (DESK["zh"][key], DESK["en"][key]) == (ACTIONS[action].zh, ACTIONS[action].en)


@pytest.mark.parametrize("fmt", ["html", "md", "csv", "xlsx"])
def test_a_history_column_names_the_action_where_a_state_column_names_the_state(fmt: Format) -> None:
    report = Report("handover", text("交接班报告", "Handover"), "t", "", "Asia/Shanghai", 0, 1, 1, None, None)
    columns = [Column("action", text("动作", "Event"), "action"), Column("state", text("状态", "State"), "word")]
    row: Row = {"action": "acknowledged", "state": "acknowledged"}
    report.sections.append(Section("alarm_events", text("报警动态", "Alarm events"), columns=columns, rows=[row]))
    assert re.search(r"(^|[|,\s])确认[|,\s]+已确认", _texts(report, fmt, "zh"))


def test_every_alarm_history_action_has_its_words() -> None:
    """A report's history column never shows a bare id: each action the alarm store records is named
    in both languages (the spread of a fire to a second zone was shown as `spread` in zh mode)."""
    missing = [action.value for action in AlarmAction if action.value not in WORDS]
    assert missing == []
    assert WORDS[AlarmAction.SPREAD].zh == DESK["zh"]["history_spread"]
    assert WORDS[AlarmAction.SPREAD].en == DESK["en"]["history_spread"]
