"""Which rules watch communication: a device is offline while an alarm of one of them is active on it.

A communication rule is one whose condition calls `offline()`. The reports take the rules as the
caller has them (the running service's, which stay good while a file being edited is not, or the
site's files as they are now), through the little they need of a rule, so that reports import no
rule engine. The outages themselves are read by facility.store.reads.alarms.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Protocol

_STRING = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'")
_OFFLINE = re.compile(r"\boffline\s*\(")


class Condition(Protocol):
    """A rule's condition as written (rules.ruleset's `Expr`)."""

    @property
    def text(self) -> str: ...


class Watching(Protocol):
    """What a report needs of a rule (rules.ruleset's `Rule`): its id and its condition."""

    @property
    def id(self) -> str: ...
    @property
    def when(self) -> Condition: ...


def watches_communication(rule: Watching) -> bool:
    """Whether the rule's condition calls offline(): it fires on a device that stopped answering."""
    return bool(_OFFLINE.search(_STRING.sub("", rule.when.text)))


def communication_rules(rules: Iterable[Watching]) -> frozenset[str]:
    """Ids of the communication rules among `rules`."""
    return frozenset(r.id for r in rules if watches_communication(r))
