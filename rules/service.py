"""Wires rule files, engine, alarms, tasks, plans and preventive schedules for one site, and reloads
the rule files when they change.

Engineers tune rules on a running site: a watcher polls the rule files' modification times and
reloads them. A reload that finds problems changes nothing (the last good rules keep running) and
reports every problem with file, line and field; a good one swaps the rules in without losing the
state of the conditions it keeps (see Engine.reload).

The service starts without the ops store: the conditions active before a stop come back at once
from the outcome journal (rules.journal, in `journal_dir`), and again from the open alarms and
tasks once the store answers (for what the journal does not know, e.g. a journal started afresh),
without disturbing a condition the engine has judged since.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from facility.aio import cancel_all
from facility.bus import Bus
from facility.model import now_ns
from facility.site import Site
from facility.store.ops import OpsStore, OpsUnavailable
from facility.store.plans import PlanStore
from facility.store.tasks import TaskStore
from facility.yamlfile import ConfigError
from rules.alarms import AlarmService
from rules.engine import Engine
from rules.journal import Journal
from rules.lifecycle import Lifecycle
from rules.outcomes import DRAIN_S, Outcomes
from rules.plans import PlanService, load_plans, step_files
from rules.ruleset import Rule, load_rules, rule_paths
from rules.schedules import Schedule, Scheduler
from rules.tasks import TaskService

log = logging.getLogger(__name__)

TICK_S = 0.1  # how often pending `for` durations are checked without new readings
WATCH_S = 2.0  # how often the rule files' modification times are compared

Stamp = tuple[tuple[str, int, int], ...]


def rule_files_stamp(site: Site) -> Stamp:
    """(path, mtime ns, size) of every rule file the site loads; a file added to a rule folder,
    removed or edited changes it. A file that cannot be read stamps as (path, -1, -1)."""
    stamps = []
    for path in rule_paths(site):
        try:
            stat = path.stat()
            stamps.append((str(path), stat.st_mtime_ns, stat.st_size))
        except OSError:
            stamps.append((str(path), -1, -1))
    return tuple(stamps)


class RulesService:
    def __init__(
        self, site: Site, bus: Bus, store: OpsStore, journal_dir: Path, attachments_dir: Path | None = None
    ) -> None:
        """`journal_dir`: a folder on local disk of this service's own (beside the telemetry spool);
        `attachments_dir`: where the files of tasks and plan steps are kept (default: beside the journal)."""
        self._site = site
        self._stamp = rule_files_stamp(site)
        self.rules = load_rules(site)
        self._by_id = {rule.id: rule for rule in self.rules}
        alarms = AlarmService(site, store, bus)
        self._task_store = TaskStore(store)
        files = attachments_dir or journal_dir.parent / "attachments"
        tasks = TaskService(site, self._task_store, bus, files)
        names = {d.id: d.name for d in site.devices if d.name}
        plans = PlanService(PlanStore(store), bus, load_plans(site), names, step_files(site, files))
        self.lifecycle = Lifecycle(alarms, tasks, self._task_store, plans, self)  # what the API reaches
        self.outcomes = Outcomes(
            alarms,
            tasks,
            plans,
            Journal(journal_dir),
            store,
            rule_of=self._rule,
            schedule_of=self._schedule,
        )
        self.scheduler = Scheduler(site, store, self.outcomes.due)
        self.engine = Engine(self.rules, self.outcomes.changed)
        self._store = store
        self._bus = bus
        self._reloading = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        # Conditions active before a stop resume as active, so that they can clear.
        self.engine.restore(self.outcomes.recover())
        self._bus.on_readings(self.engine.handle)
        self._bus.on_status(self.engine.status)
        self._bus.on_readings(self.scheduler.handle)
        self._tasks = [
            asyncio.create_task(self.outcomes.run(), name="rule outcomes"),
            asyncio.create_task(self._restore_from_store(), name="conditions from the ops store"),
            asyncio.create_task(self._once_available(self.lifecycle.alarms.run), name="alarm lifecycle"),
            asyncio.create_task(self._once_available(self.lifecycle.plans.watch), name="plan steps"),
            asyncio.create_task(self.scheduler.run(), name="preventive schedules"),
            asyncio.create_task(self._tick(), name="rule ticks"),
            asyncio.create_task(self._watch(), name="rule file watcher"),
        ]
        log.info("rules: %d loaded", len(self.rules))

    async def _restore_from_store(self) -> None:
        """Resume the conditions of the open alarms (alarm rules) and open tasks (task-only rules),
        once the store answers and holds what the journal had (so that it is not behind it). A
        condition that changed since the start was judged from fresh readings: it stays as it is."""
        await self.outcomes.recovered()
        while True:
            await self._store.wait_available()
            try:
                active = {*await self._store.alarms.active_conditions(), *await self._task_store.active_conditions()}
            except OpsUnavailable:
                continue  # down again: wait for it again
            except Exception:
                log.exception("rules: cannot read the active conditions from the ops store; trying again")
                await asyncio.sleep(WATCH_S)
                continue
            break
        self.engine.restore(active - self.outcomes.touched)

    async def _once_available(self, run: Callable[[], Awaitable[None]]) -> None:
        """Run a part that only works on the ops store once it answers (it is not up yet at start)."""
        await self._store.wait_available()
        await run()

    @property
    def schedules(self) -> list[Schedule]:
        """The preventive schedules running now (rules.lifecycle.RunningRules)."""
        return self.scheduler.schedules

    def _rule(self, rule_id: str) -> Rule | None:
        return self._by_id.get(rule_id)

    def _schedule(self, schedule_id: str) -> Schedule | None:
        return next((s for s in self.scheduler.schedules if s.id == schedule_id), None)

    async def reload(self) -> list[str]:
        """Load every rule file again and swap the rules in. Returns the problems found, each as
        `file:line: field: message`; with any, the running rules stay as they are."""
        async with self._reloading:
            stamp = rule_files_stamp(self._site)
            try:
                rules = await asyncio.to_thread(load_rules, self._site)
            except ConfigError as exc:
                problems = [str(p) for p in exc.problems]
                log.error("rules: reload refused, the %d running rules stay:\n%s", len(self.rules), "\n".join(problems))
                return problems
            finally:
                self._stamp = stamp  # a refused edit is not retried until the files change again
            self.engine.reload(rules, now_ns())
            self.rules = rules
            self._by_id = {rule.id: rule for rule in rules}
            log.info("rules: %d reloaded", len(rules))
            return []

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            self.engine.tick(now_ns())

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(WATCH_S)
            if rule_files_stamp(self._site) != self._stamp:
                await self.reload()

    async def stop(self, drain_s: float = DRAIN_S) -> None:
        """Stop, giving what is journaled `drain_s` seconds to be recorded (the rest waits on disk)."""
        await cancel_all(self._tasks)
        await self.outcomes.drain(drain_s)
