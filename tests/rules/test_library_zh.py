"""The rule library speaks both languages: a task a rule raises shows its checklist in the duty
officer's language, so every line of every library checklist is a `{zh, en}` text, and the site
file's "中文 / English" names split into their two languages."""

from __future__ import annotations

import re
from pathlib import Path

from facility.site import load_site
from facility.vocabulary import Text
from rules.ruleset import load_rules
from rules.tasks import name_pair

DEMO = Path(__file__).resolve().parents[2] / "sites" / "demo" / "site.yaml"
CJK = re.compile(r"[\u3400-\u9fff]")


def test_every_library_checklist_line_is_in_chinese_and_english() -> None:
    rules = load_rules(load_site(DEMO))
    lines = [(r.spec.id, item) for r in rules if r.spec.task for item in r.spec.task.checklist]
    assert lines, "the library raises tasks with checklists"
    one_language = [(rule, item) for rule, item in lines if not isinstance(item, Text) or item.zh == item.en]
    assert not one_language, f"checklist lines not given as {{zh, en}}: {one_language}"
    for rule, item in lines:
        assert isinstance(item, Text) and CJK.search(item.zh) and not CJK.search(item.en), (rule, item)


def test_a_name_in_both_languages_splits_and_one_in_one_stays_whole() -> None:
    assert (name_pair("奥的斯电梯维保 / Otis service").zh, name_pair("Otis service / 奥的斯电梯维保").zh) == (
        "奥的斯电梯维保",
        "奥的斯电梯维保",
    )
    assert name_pair("奥的斯电梯维保 / Otis service").en == "Otis service"
    assert name_pair("A / B testing").zh == "A / B testing"  # no Chinese side: not a pair
    assert name_pair("检查 / 更换").en == "检查 / 更换"
