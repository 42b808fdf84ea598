"""The 说明 (detail) of alarm and task history entries in both languages.

The stores write a history entry's detail once, in English, from its kind ("not acknowledged
within 120 s", "open -> assigned", "until 2026-12-09 04:00:00Z: ..."), and keep what people typed
(a comment, a reason, a note) as they typed it. A report read in Chinese must not show the store's
English, nor its UTC `Z` times, so the detail is rebuilt here from the entry's kind and the values
in it; typed text is left as it is, and a detail of a shape not known here is shown unchanged.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from facility.vocabulary import Text
from facility.words import word
from reports.values import local_time

NS = 1_000_000_000
_CHATTER = re.compile(r"^(\d+) activations within (\d+) min$")
_ESCALATED = re.compile(r"^not acknowledged within (\d+) s$")
_SHELVED = re.compile(r"^until (\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ): (.*)$", re.DOTALL)
_ASSIGNED = re.compile(r"^(?:from (.*) )?to (.*)$", re.DOTALL)
_STATUS = re.compile(r"^(\w+) -> (\w+)$")
_RECURRED = re.compile(r"^recurrence (\d+): ", re.DOTALL)


def alarm_detail(action: str, detail: str, message: Text, zone: ZoneInfo) -> Text | str:
    """An alarm history entry's detail; `message` is the alarm's message, which an activation carries."""
    if action in ("raised", "raised again") and detail == message.en and message.zh:
        return message
    if action == "chattering" and (m := _CHATTER.match(detail)):
        n, minutes = m.groups()
        return Text(f"{minutes} 分钟内报警 {n} 次", detail)
    if action == "escalated" and (m := _ESCALATED.match(detail)):
        seconds = int(m.group(1))
        zh, en = (
            (f"{seconds // 60} 分钟", f"{seconds // 60} min")
            if seconds % 60 == 0
            else (f"{seconds} 秒", f"{seconds} s")
        )
        return Text(f"{zh}内未确认", f"not acknowledged within {en}")
    if action == "shelved" and (m := _SHELVED.match(detail)):
        until = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%SZ").replace(tzinfo=UTC)
        shown = local_time(int(until.timestamp()) * NS, zone)
        return Text(f"搁置至 {shown}：{m.group(2)}", f"until {shown}: {m.group(2)}")
    if action == "unshelved" and detail == "shelf expired":
        return Text("搁置到期", detail)
    return detail


def task_detail(action: str, detail: str, title: Text, description: Text, checklist: dict[str, Text]) -> Text | str:
    """A task history entry's detail; `checklist` names the task's items by their English text."""
    if action == "created" and detail == title.en:
        return title
    if action == "recurred" and (m := _RECURRED.match(detail)):
        n = m.group(1)
        return Text(f"第 {n} 次再次发生：{description.zh or description.en}", detail)
    if action == "assigned" and (m := _ASSIGNED.match(detail)):
        before, after = m.groups()
        return Text(f"由 {before} 改派给 {after}" if before else f"派给 {after}", detail)
    if action == "status" and (m := _STATUS.match(detail)):
        before, after = m.groups()
        return Text(f"{word(before, 'zh')} → {word(after, 'zh')}", f"{word(before, 'en')} → {word(after, 'en')}")
    if action in ("ticked", "unticked") and detail in checklist:
        return checklist[detail]
    return detail
