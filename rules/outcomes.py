"""Carries each condition change to what its rule asks for, in order: the alarm, the task, the plan;
and each preventive schedule's occurrence to its task.

Every outcome is journaled on local disk first (rules.journal) and applied to the ops store only
once it is there, so that an ops store that is down delays recording, never raising, an alarm: a
restart applies what was journaled and not applied, and the journal says which conditions were
active. One task applies the outcomes in order and finishes each before the next: a clear must
never overtake its raise, or an alarm would stand for ever. A step that fails is retried with a
growing pause (sooner when the store answers again); the steps of an outcome already done are not
repeated, so a plan opens once even when the task after it had to wait. Only a refusal (a
facility.errors.Conflict or Refused: the step cannot succeed, e.g. no such plan) drops a step,
logged and counted; any other error, a bug included, is retried, because dropping it would lose an
alarm.

While an alarm waits for the store (the store is known down, or an attempt failed or has not
been answered within SHOW_AFTER_S), it is announced at once as a provisional alarm
(AlarmService.announce_provisional), followed by the recorded alarm's event when it is in the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import select

from facility.errors import Conflict, Refused
from facility.model import now_ns
from facility.readiness import Figure, PartState, State
from facility.records import AlarmRecord, TaskRecord
from facility.store.ops import OpsStore, OpsUnavailable
from facility.store.tables import TaskRow
from facility.vocabulary import Text
from rules.alarms import AlarmService
from rules.engine import Change
from rules.journal import ConditionEntry, DueEntry, Entry, Journal
from rules.plans import PlanService
from rules.ruleset import Rule, RuleTexts
from rules.schedules import Due, Schedule
from rules.tasks import TaskService

log = logging.getLogger(__name__)

RETRY_MAX_S = 10.0
DRAIN_S = 10.0  # at shutdown, how long journaled outcomes may wait for a store that does not answer
SHOW_AFTER_S = 1.0  # an alarm the store has not recorded this long after its attempt began is shown provisionally
# Refusals: the step cannot succeed however often it is tried (facility.errors: the system said no,
# for a reason it logs). Any other exception, a ValueError or pydantic's ValidationError included, is
# a bug or an outage: retried, so that it cannot lose an alarm. (The stores' ActionRefused,
# PlanRefused and TaskError are Conflicts.)
REFUSALS = (Conflict, Refused)
T = TypeVar("T")

Key = tuple[str, str]  # (rule, device)


@dataclass(slots=True)
class _Pending:
    """A journaled outcome not yet applied. `item` is None for one journaled before a restart whose
    rule or schedule no longer exists (or no longer covers its device)."""

    seq: int
    entry: Entry
    item: Change | Due | None
    shown: bool = False  # announced provisionally


class Outcomes:
    def __init__(
        self,
        alarms: AlarmService,
        tasks: TaskService,
        plans: PlanService,
        journal: Journal,
        store: OpsStore,
        *,
        rule_of: Callable[[str], Rule | None],
        schedule_of: Callable[[str], Schedule | None],
    ) -> None:
        """`rule_of` and `schedule_of` find the rule or schedule of an entry journaled before a
        restart by its id (None: it is gone)."""
        self.alarms, self.tasks, self.plans = alarms, tasks, plans
        self.journal = journal
        self._store = store
        self._rule_of, self._schedule_of = rule_of, schedule_of
        self._queue: deque[_Pending] = deque()
        self._wake = asyncio.Event()
        self._waiting = False  # the store has not recorded the outcome at the head: show new alarms at once
        self._recovered_upto = 0  # the last entry found in the journal at start
        self._recovered = asyncio.Event()
        self._touched: set[Key] = set()  # conditions that changed since the start
        self.recorded = 0
        self.retries = 0
        self.refused = 0
        self.unknown = 0  # journaled before a restart for a rule or schedule that is gone
        self._last_recorded_ns: int | None = None

    def recover(self) -> frozenset[Key]:
        """Open the journal (at start, before the engine runs): queue what it holds that was not
        applied, oldest first, and return the conditions it says are active."""
        for seq, entry in self.journal.open():
            self._queue.append(_Pending(seq, entry, self._revive(entry)))
        if self._queue:
            self._recovered_upto = self._queue[-1].seq
            log.info(
                "rule outcomes: %d journaled before the stop and not recorded; applying them first", len(self._queue)
            )
        else:
            self._recovered.set()
        return self.journal.active

    async def recovered(self) -> None:
        """Return once the outcomes found in the journal at start are applied."""
        await self._recovered.wait()

    @property
    def touched(self) -> frozenset[Key]:
        """(rule, device) of every condition that changed since the start."""
        return frozenset(self._touched)

    @property
    def pending(self) -> int:
        return len(self._queue)

    def changed(self, change: Change) -> None:
        """The engine's on_change: journal and queue, never wait."""
        self._touched.add((change.rule.id, change.device))
        entry = ConditionEntry(
            change.rule.id, change.device, change.active, change.ts, change.values, change.suppressed, change.spread
        )
        self._enqueue(entry, change)

    def due(self, due: Due) -> None:
        """The scheduler's on_due."""
        self._enqueue(DueEntry(due.schedule.id, due.device_id, due.ts, due.reason.zh, due.reason.en), due)

    async def durable(self) -> None:
        """Return once every outcome handed in so far is on disk (at once if it is)."""
        await self.journal.durable()

    def settled(self) -> asyncio.Future[None] | None:
        """None when every outcome handed in so far is on disk, else a future for when it is."""
        return self.journal.settled()

    async def run(self) -> None:
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            await self._carry(self._queue[0])

    async def drain(self, timeout: float = DRAIN_S) -> None:
        """Apply what is journaled, at shutdown, for at most `timeout` seconds: a store that is down
        must not keep the service from stopping. What is left stays journaled for the next start."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self._queue:
                    await self._carry(self._queue[0])
        await self.journal.close()
        if self._queue:
            log.warning(
                "stopping with %d rule outcomes journaled, not yet recorded (the ops store does not answer); "
                "applied on the next start",
                len(self._queue),
            )

    def parts(self) -> Iterable[PartState]:
        """The readiness of the outcomes (facility.readiness.Reporter)."""
        if self.journal.failure is not None:
            state = State.DOWN
            detail = f"the outcome journal in {self.journal.folder} cannot be written: {self.journal.failure}"
        elif self._waiting and self._queue:
            state = State.DEGRADED
            detail = f"alarms are shown but not yet recorded: {len(self._queue)} rule outcomes wait for the ops store"
        else:
            state, detail = State.UP, ""
        yield PartState("rule outcomes", "outcomes", state, self._last_recorded_ns, detail)

    def figures(self) -> Iterable[Figure]:
        yield Figure("outcomes_pending", "rule outcomes journaled and not yet recorded", "gauge", len(self._queue))
        yield Figure("outcomes_recorded_total", "rule outcomes applied to the ops store", "counter", self.recorded)
        yield Figure("outcomes_retries_total", "attempts to record a rule outcome that failed", "counter", self.retries)
        refused = "rule outcome steps dropped: refused, or journaled for a rule that is gone"
        yield Figure("outcomes_refused_total", refused, "counter", self.refused, (("reason", "refused"),))
        yield Figure("outcomes_refused_total", refused, "counter", self.unknown, (("reason", "unknown_rule"),))
        yield Figure("journal_bytes", "size of the outcome journal", "gauge", self.journal.size)
        yield Figure("journal_writes_total", "groups of outcomes written and fsynced", "counter", self.journal.writes)

    def _enqueue(self, entry: Entry, item: Change | Due) -> None:
        pending = _Pending(self.journal.append(entry), entry, item)
        self._queue.append(pending)
        if self._waiting or self._store.failing:  # those queued before were shown when it began
            self._waiting = True
            self._show(pending)
        self._wake.set()

    def _revive(self, entry: Entry) -> Change | Due | None:
        """The change or occurrence of an entry journaled before a restart."""
        if isinstance(entry, DueEntry):
            schedule = self._schedule_of(entry.schedule)
            if schedule is None:
                return None
            return Due(schedule, entry.device, entry.ts, Text(zh=entry.reason_zh, en=entry.reason_en))
        rule = self._rule_of(entry.rule)
        if rule is None or (entry.active and entry.device not in rule.devices):
            return None  # a clear needs only the ids: it is applied even when the device left the rule
        return Change(rule, entry.device, entry.active, entry.ts, entry.values, entry.suppressed, entry.spread)

    async def _carry(self, pending: _Pending) -> None:
        await self._journaled(pending.seq)
        item = pending.item
        if item is None:
            self.unknown += 1
            log.warning("dropped a journaled rule outcome whose rule or schedule is gone: %s", pending.entry)
        elif isinstance(item, Due):
            await self._step(f"task of schedule {item.schedule.id}", lambda: self._preventive_task(item, pending))
            self.recorded += 1
        else:
            await self._change(item, pending)
            self.recorded += 1
        await self.journal.applied(pending.seq)
        self._queue.popleft()
        self._waiting = False  # the store answered
        self._last_recorded_ns = now_ns()
        if pending.seq >= self._recovered_upto:
            self._recovered.set()

    async def _journaled(self, seq: int) -> None:
        """Wait until the entry is on disk, so that it is applied only once it would survive a
        restart; but with a journal that cannot write (a failed or full disk), go on without it:
        an outcome recorded in the store is safe, one held back in memory would not even be shown."""
        if self.journal.failure is not None:
            return
        written = asyncio.ensure_future(self.journal.written(seq))
        try:
            while self.journal.failure is None and not written.done():
                await asyncio.wait({written}, timeout=SHOW_AFTER_S)
        finally:
            written.cancel()

    async def _change(self, change: Change, pending: _Pending) -> None:
        """Every step is safe to repeat (a restart applies the entry in progress again): raising an
        active alarm, clearing a cleared one, opening the task or plan an alarm already has change
        nothing; a spread whose text the alarm already shows changes nothing, and its task note is
        not written twice."""
        spec = change.rule.spec
        what = f"{spec.id} on {change.device}"
        alarm: AlarmRecord | None = None
        if spec.outcome in ("alarm", "both"):
            recorded = await self._step(f"alarm of {what}", lambda: self.alarms.record(change))
            alarm, action = recorded or (None, None)
            if pending.shown and alarm is not None and action is None:
                self.alarms.announce(alarm)  # the desk replaces the provisional alarm with this one
        if spec.outcome in ("task", "both"):
            if change.spread:
                await self._step(f"task note of {what}", lambda: self._note_spread(change))
            elif change.active:
                alarm_id = alarm.id if alarm else None
                await self._step(f"task of {what}", lambda: self.tasks.from_rule(change, alarm_id))
            else:
                await self._step(
                    f"task of {what}", lambda: self.tasks.condition_cleared(spec.id, change.device, change.ts)
                )
        if spec.plan and alarm is not None and change.active and not change.spread:
            plan, alarm_id = spec.plan, alarm.id
            await self._step(f"plan of {what}", lambda: self.plans.open(plan, alarm_id, change.device, change.ts))

    async def _note_spread(self, change: Change) -> TaskRecord | None:
        """Note the condition's new text on its open task, so that whoever works it hears of the
        zones that joined; None when it has no open task or the note is there already."""
        rule, device = change.rule.id, change.device
        query = select(TaskRow.id).where(TaskRow.rule_id == rule, TaskRow.device_id == device, TaskRow.is_open)
        async with self._store.sessions() as s:
            task_id = (await s.scalars(query.limit(1))).first()
        if task_id is None:
            return None
        note = _spread_note(self.alarms.texts(change))
        task = await self.tasks.get(task_id)
        if any(h.action == "note" and h.detail == note for h in task.history):
            return None
        return await self.tasks.add_note(task_id, note, "rules", "rules")

    async def _step(self, what: str, step: Callable[[], Awaitable[T]]) -> T | None:
        """Run a step until it succeeds or is refused: a later outcome must not overtake this one."""
        failures = 0
        told = ""
        while True:
            try:
                result = await self._attempt(step)
            except REFUSALS as exc:
                self.refused += 1
                log.error("the %s was refused, and is dropped: %s", what, exc)
                return None
            except Exception as exc:
                self._show_waiting()
                if str(exc) != told:  # once per cause, not once per attempt
                    told = str(exc)
                    if isinstance(exc, OpsUnavailable):
                        log.warning("cannot record the %s yet; it is journaled, retrying: %s", what, exc)
                    else:
                        log.exception("cannot record the %s; retrying", what)
                failures += 1
                self.retries += 1
                await self._pause(failures)
                continue
            if failures:
                log.warning("recorded the %s after %d retries", what, failures)
            return result

    async def _attempt(self, step: Callable[[], Awaitable[T]]) -> T:
        """One try; a store that is not up yet or slow to answer gets the waiting alarms shown meanwhile."""
        if not self._store.available:  # e.g. just started: give it a moment before showing them
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._store.wait_available(), SHOW_AFTER_S)
            if not self._store.available:
                self._show_waiting()
        attempt = asyncio.ensure_future(step())
        try:
            done, _ = await asyncio.wait({attempt}, timeout=SHOW_AFTER_S)
        except asyncio.CancelledError:
            attempt.cancel()
            raise
        if not done:
            self._show_waiting()
        return await attempt

    async def _pause(self, failures: int) -> None:
        """A growing pause before the next try, cut short when a store that was down answers again."""
        pause = min(RETRY_MAX_S, 0.25 * 2**failures)
        if self._store.available:
            await asyncio.sleep(pause)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._store.wait_available(), pause)

    def _show_waiting(self) -> None:
        self._waiting = True
        for pending in self._queue:
            self._show(pending)

    def _show(self, pending: _Pending) -> None:
        item = pending.item
        if pending.shown or not isinstance(item, Change) or not item.active:
            return
        if item.rule.spec.outcome in ("alarm", "both"):
            pending.shown = True
            try:  # on the engine's path: a failure here must not reach it
                self.alarms.announce_provisional(item)
            except Exception:
                log.exception("cannot announce the alarm of %s on %s before it is recorded", item.rule.id, item.device)

    async def _preventive_task(self, due: Due, pending: _Pending) -> TaskRecord | None:
        spec = due.schedule.spec
        deadline = due.ts + int(spec.task.sla * 1e9)
        if pending.seq <= self._recovered_upto and await self._opened(due, deadline):
            return None  # the entry in progress at the stop: its task was opened then
        return await self.tasks.create(
            title=Text(spec.title.zh, spec.title.en),
            kind=spec.task.kind,
            by="schedule",
            source=due.schedule.source,
            team=spec.task.team,
            device=due.device_id,
            due=deadline,
            checklist=[Text(item.zh, item.en) for item in spec.task.checklist],
            description=Text(due.reason.zh, due.reason.en),
        )

    async def _opened(self, due: Due, deadline: int) -> bool:
        """Whether the task of this occurrence exists: a schedule's task is told apart by its title,
        device, reason and due time (the occurrence's time plus the SLA)."""
        query = select(TaskRow.id).where(
            TaskRow.created_by == "schedule",
            TaskRow.title_en == due.schedule.spec.title.en,
            TaskRow.device_id.is_(None) if due.device_id is None else TaskRow.device_id == due.device_id,
            TaskRow.description_en == due.reason.en,
            TaskRow.due == deadline,
        )
        async with self._store.sessions() as s:
            return (await s.scalars(query.limit(1))).first() is not None


def _spread_note(texts: RuleTexts) -> str:
    """A task note for a condition whose text grew: its message (its title when it has none) in both
    languages, which names every point in its lists."""
    zh, en = texts.message_zh or texts.title_zh, texts.message_en or texts.title_en
    return f"报警部位增加：{zh} / More points in alarm: {en}"
