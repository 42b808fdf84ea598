"""What the API may do to the records the rules keep: the lifecycle actions of alarms (acknowledge,
shelve, comment, out of service, the flood state), tasks (create, assign, move on, attach) and
emergency plans (tick, close, attach), and the rule files running now (list, reload).

The API holds this, not the whole RulesService: the engine, the outcome journal and the scheduler
are the rule worker's, and an API in a process of its own (issue 12) builds a Lifecycle over the
same ops store without them. RulesService builds the one of its process and exposes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from facility.store.tasks import TaskStore
from rules.alarms import AlarmService
from rules.plans import PlanService
from rules.ruleset import Rule
from rules.schedules import Schedule
from rules.tasks import TaskService


class RunningRules(Protocol):
    """The rule files a rule worker runs: what the API lists, and how it asks for a reload."""

    @property
    def rules(self) -> list[Rule]:
        """The rules running now, in load order."""
        ...

    @property
    def schedules(self) -> list[Schedule]:
        """The preventive schedules running now."""
        ...

    async def reload(self) -> list[str]:
        """Load the rule files again; the problems found, each `file:line: field: message`
        (with any, the running rules stay)."""
        ...


@dataclass
class Lifecycle:
    """The alarm, task and plan services and the running rules, as the API reaches them.

    The services are those the rule worker records its outcomes through, so that an action and an
    outcome announce their changes alike. `task_store` is read for the desk's task lists."""

    alarms: AlarmService
    tasks: TaskService
    task_store: TaskStore
    plans: PlanService
    running: RunningRules
