"""Rule files reloaded on a running site: kept conditions keep their state, removed ones clear,
and a bad edit leaves the last good rules running."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from facility.model import Quality, Reading, now_ns
from facility.site import Site
from rules.engine import Change, Engine
from rules.ruleset import load_rules
from tests.rules.conftest import RULES, MakeSite, rules_running
from testsupport.system import eventually

S = 1_000_000_000
OFFLINE = """
  - id: pump-offline
    title: {zh: "{device_name} 离线", en: "{device_name}: offline"}
    devices: {types: [booster_pump]}
    when: offline()
    priority: high
"""


def pump(t: float, quality: Quality = Quality.GOOD, **values: object) -> list[Reading]:
    return [Reading("pump-1", k, v, quality, int(t * S)) for k, v in values.items()]  # type: ignore[arg-type]


def seen(changes: list[Change]) -> list[tuple[str, bool, bool, int]]:
    return [(c.rule.id, c.active, c.suppressed, c.ts // S) for c in changes]


def test_a_reload_keeps_unchanged_conditions_and_clears_removed_ones(make_site: MakeSite) -> None:
    changes: list[Change] = []
    engine = Engine(load_rules(make_site(RULES + OFFLINE)), changes.append)
    engine.handle(pump(0, running=True, outlet_pressure=0.2))
    engine.handle(pump(5, running=True, outlet_pressure=0.2))
    engine.handle(pump(6, Quality.NO_COMM, running=None, outlet_pressure=None))
    engine.handle(pump(7, running=True, outlet_pressure=0.2))
    assert seen(changes)[-2:] == [("low-pressure", True, False, 7), ("pump-offline", False, False, 7)]
    changes.clear()

    # The title changes (the condition stays), the offline rule goes, a new rule comes.
    edited = RULES.replace("low pressure", "pressure low") + OFFLINE.replace("pump-offline", "pump-tripped").replace(
        "offline()", "running and tripped"
    )
    engine.reload(load_rules(make_site(edited)), 8 * S)
    assert changes == []  # nothing was active but the low pressure, which carries over
    engine.handle(pump(9, tripped=True))  # `running` was read before the reload and still counts
    engine.handle(pump(10, outlet_pressure=0.35))
    assert seen(changes) == [("pump-tripped", True, False, 9), ("low-pressure", False, False, 10)]
    assert changes[-1].rule.spec.title.en.startswith("{device_name}: pressure low")


def test_a_changed_condition_starts_afresh_and_its_old_alarm_clears(make_site: MakeSite) -> None:
    changes: list[Change] = []
    engine = Engine(load_rules(make_site(RULES)), changes.append)
    engine.handle(pump(0, running=True, outlet_pressure=0.2))
    engine.handle(pump(5, running=True, outlet_pressure=0.2))
    engine.reload(load_rules(make_site(RULES.replace("< 0.25", "< 0.22"))), 6 * S)
    engine.handle(pump(7, outlet_pressure=0.2))
    engine.handle(pump(12, outlet_pressure=0.2))
    assert seen(changes) == [
        ("low-pressure", True, False, 5),
        ("low-pressure", False, False, 6),  # the old condition is gone
        ("low-pressure", True, False, 12),  # the new one waits its own `for` from 7 s
    ]


def test_a_pending_condition_keeps_its_timer_across_a_reload(make_site: MakeSite) -> None:
    changes: list[Change] = []
    engine = Engine(load_rules(make_site(RULES)), changes.append)
    engine.handle(pump(0, running=True, outlet_pressure=0.2))
    engine.reload(load_rules(make_site(RULES.replace("priority: high", "priority: medium"))), 3 * S)
    engine.tick(5 * S)
    assert seen(changes) == [("low-pressure", True, False, 5)]
    assert changes[0].rule.spec.priority == "medium"


async def test_the_watcher_reloads_edits_and_keeps_the_last_good_rules(
    make_site: MakeSite, tmp_path: Path, ops_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    site: Site = make_site(RULES)
    async with rules_running(site, ops_url) as (service, bus, store):
        (tmp_path / "rules.yaml").write_text(RULES + OFFLINE)
        await eventually(_async(lambda: {r.id for r in service.rules} == {"low-pressure", "pump-offline"}), 10)

        caplog.set_level(logging.ERROR, logger="rules.service")
        (tmp_path / "rules.yaml").write_text(RULES.replace("outlet_pressure < 0.25", "outlet_presure < 0.25"))
        await eventually(_async(lambda: "reload refused" in caplog.text), 10)
        assert {r.id for r in service.rules} == {"low-pressure", "pump-offline"}
        problems = await service.reload()
        assert problems == [f"{tmp_path / 'rules.yaml'}:5: rules[0].when: unknown point 'outlet_presure' (column 13)"]

        bus.publish_readings(pump(now_ns() / S, Quality.NO_COMM, running=None))  # the kept rules still judge
        (alarm,) = await eventually(store.alarms.list_alarms, 10)
        assert (alarm.rule, alarm.device) == ("pump-offline", "pump-1")


def _async(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    """A synchronous check for `eventually`."""

    async def run() -> bool:
        return check()

    return run
