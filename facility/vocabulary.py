"""The project's shared words as types: bilingual text, alarm history actions, event kinds.

Each of these was a bare string or a class of its own in several modules; one type each lets mypy
follow a renamed value from the store that writes it to the desk, report and notifier that read it.
The display words for these ids (what a duty officer reads) are in `facility.words`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class Text:
    """A text in both languages of the desk. Ids stay ASCII; this is for what a person reads."""

    zh: str
    en: str

    @staticmethod
    def same(text: str) -> Text:
        """A text written once (a checklist line, a resident's words), shown as written in both languages."""
        return Text(text, text)

    def pick(self, lang: str) -> str:
        """The text in `lang` ("zh" or "en"); the other language when this one is empty."""
        first, other = (self.zh, self.en) if lang == "zh" else (self.en, self.zh)
        return first or other


class AlarmAction(StrEnum):
    """What an alarm's history entry records. The values are stored in the ops store and exported,
    so they are never renamed, only added to."""

    RAISED = "raised"
    RAISED_AGAIN = "raised again"
    SPREAD = "spread"  # while active, the alarm's text grew (a second zone in fire)
    SUPPRESSED = "suppressed"
    SUPPRESSION_ENDED = "suppression ended"
    CHATTERING = "chattering"
    CHATTERING_ENDED = "chattering ended"
    RETURNED_TO_NORMAL = "returned to normal"
    ACKNOWLEDGED = "acknowledged"
    SHELVED = "shelved"
    UNSHELVED = "unshelved"
    COMMENT = "comment"
    OUT_OF_SERVICE = "out of service"
    BACK_IN_SERVICE = "back in service"
    ESCALATED = "escalated"


ACTIVATIONS = frozenset({AlarmAction.RAISED, AlarmAction.RAISED_AGAIN})
"""The history actions of an alarm going active (what chattering and the KPIs count)."""


class EventKind(StrEnum):
    """The kind of an event on the bus and the desk's stream (SSE `event:` field)."""

    ALARM = "alarm"
    TASK = "task"
    PLAN = "plan"
    DEVICE = "device"
    ESCALATION = "escalation"
    FLOOD = "flood"
    RESET = "reset"  # what a subscriber missed cannot be replayed: reload everything
