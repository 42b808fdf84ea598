"""Carries each condition change to what its rule asks for, in order: the alarm, the task, the plan;
and each preventive schedule's occurrence to its task.

One task takes the engine's changes in order and finishes each before the next: a clear must never
overtake its raise, or an alarm would stand for ever. A step that fails (the ops store is down) is
retried with a growing pause; the steps of a change already done are not repeated, so a plan opens
once even when the task after it had to wait.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from facility.store.ops import ACTIVATIONS
from facility.store.tasks import Bilingual
from rules.alarms import AlarmService
from rules.engine import Change
from rules.plans import PlanService
from rules.schedules import Due
from rules.tasks import TaskService

log = logging.getLogger(__name__)

RETRY_MAX_S = 10.0
DRAIN_S = 10.0  # at shutdown, how long queued outcomes may wait for a store that does not answer
T = TypeVar("T")


class Outcomes:
    def __init__(self, alarms: AlarmService, tasks: TaskService, plans: PlanService) -> None:
        self.alarms, self.tasks, self.plans = alarms, tasks, plans
        self._queue: asyncio.Queue[Change | Due] = asyncio.Queue()

    def changed(self, change: Change) -> None:
        """The engine's on_change: queue only, never wait."""
        self._queue.put_nowait(change)

    def due(self, due: Due) -> None:
        """The scheduler's on_due."""
        self._queue.put_nowait(due)

    async def run(self) -> None:
        while True:
            await self._carry(await self._queue.get())

    async def drain(self, timeout: float = DRAIN_S) -> None:
        """Carry out what is queued, at shutdown, for at most `timeout` seconds: a store that is
        down must not keep the service from stopping. What is left is not lost for good: on the next
        start the conditions are judged again from fresh readings."""
        try:
            async with asyncio.timeout(timeout):
                while not self._queue.empty():
                    await self._carry(self._queue.get_nowait())
        except TimeoutError:
            log.error(
                "stopping with %d rule outcomes not recorded (the ops store does not answer); "
                "they are judged again from fresh readings on the next start",
                self._queue.qsize() + 1,
            )

    async def _carry(self, item: Change | Due) -> None:
        if isinstance(item, Due):
            await _retry(lambda: self._preventive_task(item), f"task of schedule {item.schedule.id}")
            return
        change, spec = item, item.rule.spec
        what = f"{spec.id} on {change.device}"
        alarm: dict[str, Any] | None = None
        action: str | None = None
        if spec.outcome in ("alarm", "both"):
            alarm, action = await _retry(lambda: self.alarms.record(change), f"alarm of {what}") or (None, None)
        if spec.outcome in ("task", "both"):
            if change.active:
                alarm_id = alarm["id"] if alarm else None
                await _retry(lambda: self.tasks.from_rule(change, alarm_id), f"task of {what}")
            else:
                await _retry(lambda: self.tasks.condition_cleared(spec.id, change.device, change.ts), f"task of {what}")
        if spec.plan and alarm is not None and action in ACTIVATIONS:
            plan = spec.plan
            await _retry(lambda: self.plans.open(plan, alarm["id"], change.device, change.ts), f"plan of {what}")

    async def _preventive_task(self, due: Due) -> dict[str, Any]:
        spec = due.schedule.spec
        return await self.tasks.create(
            title=Bilingual(spec.title.zh, spec.title.en),
            kind=spec.task.kind,
            by="schedule",
            source=due.schedule.source,
            team=spec.task.team,
            device=due.device_id,
            due=due.ts + int(spec.task.sla * 1e9),
            checklist=[Bilingual(item.zh, item.en) for item in spec.task.checklist],
            description=Bilingual(due.reason.zh, due.reason.en),
        )


async def _retry(step: Callable[[], Awaitable[T]], what: str) -> T | None:
    """Run a step until it succeeds: a later change must not overtake this one. A step refused as
    wrong (a ValueError: no such plan, a task field) cannot succeed by retrying; it is logged."""
    failures = 0
    while True:
        try:
            result = await step()
        except ValueError as exc:
            log.error("the %s was refused: %s", what, exc)
            return None
        except Exception:
            if failures == 0:
                log.exception("cannot record the %s; retrying", what)
            failures += 1
            await asyncio.sleep(min(RETRY_MAX_S, 0.5 * 2**failures))
            continue
        if failures:
            log.warning("recorded the %s after %d retries", what, failures)
        return result
