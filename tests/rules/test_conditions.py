"""Kinds of condition, judged by the engine as readings arrive: states, rates, counts, quality,
communication loss, and inhibition (suppression by design)."""

from __future__ import annotations

import pytest

from facility.model import Quality, Reading
from facility.site import Site
from rules.engine import Change, Engine
from rules.ruleset import load_rules
from tests.rules.conftest import RULES, MakeSite

S = 1_000_000_000
TITLE = 'title: {zh: "{device_name} 测试", en: "{device_name}: test"}'


class Plant:
    """An engine on a site, fed snapshots the way the gateway publishes them."""

    def __init__(self, site: Site) -> None:
        self.changes: list[Change] = []
        self.engine = Engine(load_rules(site), self.changes.append)

    def feed(self, device: str, t: float, quality: Quality = Quality.GOOD, **values: object) -> None:
        self.engine.handle([Reading(device, k, v, quality, int(t * S)) for k, v in values.items()])  # type: ignore[arg-type]

    def seen(self, rule: str | None = None) -> list[tuple[str, bool, bool, int]]:
        """(device, active, suppressed, seconds) of each change, of one rule or all."""
        return [(c.device, c.active, c.suppressed, c.ts // S) for c in self.changes if rule in (None, c.rule.id)]


def test_a_state_point_raises_on_its_label(make_site: MakeSite) -> None:
    plant = Plant(
        make_site(f"""rules:
  - id: fire
    {TITLE}
    devices: {{types: [fire_panel]}}
    when: zone_3_state == "fire"
    priority: emergency
""")
    )
    plant.feed("fire-1", 0, zone_3_state="normal", zone_2_state="fire")
    plant.feed("fire-1", 1, zone_3_state="fire")
    plant.feed("fire-1", 2, zone_3_state="fault")
    assert plant.seen() == [("fire-1", True, False, 1), ("fire-1", False, False, 2)]


RATE = f"""rules:
  - id: sump-rising
    {TITLE}
    devices: {{types: [sump_pit]}}
    when: rate(level, 5m) > 0.2
    priority: high
"""


def test_rate_is_change_per_minute_once_half_the_window_has_data(make_site: MakeSite) -> None:
    plant = Plant(make_site(RATE))
    for step in range(6):  # 0.15 every 30 s: 0.3 per minute
        plant.feed("sump-1", 30 * step, level=1.0 + 0.15 * step)
    # At 120 s the samples span 2 of the 5 minutes: unknown; at 150 s they span half the window.
    assert plant.seen() == [("sump-1", True, False, 150)]
    for t in range(180, 330, 30):  # the level stops rising: 0.75 over 3 min, 3.5 min, then 4 min
        plant.feed("sump-1", t, level=1.75)
    assert plant.seen() == [("sump-1", True, False, 150), ("sump-1", False, False, 240)]


def test_a_slow_rise_raises_nothing_and_a_bad_value_keeps_the_window(make_site: MakeSite) -> None:
    plant = Plant(make_site(RATE))
    for step in range(12):  # 0.1 per minute
        plant.feed("sump-1", 30 * step, level=1.0 + 0.05 * step)
    plant.feed("sump-1", 400, Quality.BAD, level=None)
    assert plant.seen() == []
    plant.feed("sump-1", 430, level=9.0)  # the samples before the bad value still span the window
    assert plant.seen() == [("sump-1", True, False, 430)]


def test_stale_raises_while_the_point_is_marked_stale(make_site: MakeSite) -> None:
    plant = Plant(
        make_site(f"""rules:
  - id: sump-level-stale
    {TITLE}
    devices: {{types: [sump_pit]}}
    when: stale(level)
    priority: medium
""")
    )
    plant.feed("sump-1", 0, level=1.0, inflow=2.0)
    plant.feed("sump-1", 10, Quality.STALE, inflow=None)  # another point: not this rule's
    plant.feed("sump-1", 20, Quality.NO_COMM, level=None)  # no communication is not stale
    assert plant.seen() == []
    plant.feed("sump-1", 30, Quality.STALE, level=None)
    plant.feed("sump-1", 40, level=1.1)
    assert plant.seen() == [("sump-1", True, False, 30), ("sump-1", False, False, 40)]


def test_an_offline_device_raises_its_communication_rule_and_suppresses_its_value_rules(
    make_site: MakeSite,
) -> None:
    plant = Plant(
        make_site(f"""{RULES}
  - id: pump-offline
    {TITLE}
    devices: {{types: [booster_pump]}}
    when: offline()
    for: 10s
    priority: high
""")
    )
    plant.feed("pump-1", 0, running=True, outlet_pressure=0.2)
    plant.feed("pump-1", 5, running=True, outlet_pressure=0.2)
    plant.feed("pump-1", 6, Quality.NO_COMM, running=None, outlet_pressure=None, frequency=None)
    plant.engine.tick(15 * S)
    assert plant.seen("pump-offline") == []
    plant.engine.tick(16 * S)
    plant.feed("pump-1", 20, running=True, outlet_pressure=0.2)  # back, and still low
    plant.feed("pump-1", 21, outlet_pressure=0.35)
    assert plant.seen("low-pressure") == [
        ("pump-1", True, False, 5),
        ("pump-1", True, True, 6),  # the device went offline: its alarm is suppressed by design
        ("pump-1", True, False, 20),  # heard from again, and the pressure is still low
        ("pump-1", False, False, 21),
    ]
    assert plant.seen("pump-offline") == [("pump-1", True, False, 16), ("pump-1", False, False, 20)]


def test_count_counts_rising_edges_within_the_window(make_site: MakeSite) -> None:
    plant = Plant(
        make_site(f"""rules:
  - id: door-forced-often
    {TITLE}
    devices: {{types: [access_door]}}
    when: count(forced_open, 1h) >= 3
    priority: medium
  - id: door-faults
    {TITLE}
    devices: {{types: [access_door]}}
    when: count(last_event == "fault", 10m) >= 2
    priority: low
""")
    )
    for t, forced in [(0, False), (60, True), (120, False), (180, True), (240, True), (300, False)]:
        plant.feed("door-1", t, forced_open=forced)
    assert plant.seen() == []  # two edges: 240 s was still the same opening
    plant.feed("door-1", 600, forced_open=True)
    plant.engine.tick(3660 * S)  # the edge at 60 s is exactly an hour old: still in the window
    plant.engine.tick(3661 * S)
    assert plant.seen("door-forced-often") == [("door-1", True, False, 600), ("door-1", False, False, 3661)]

    for t, event in [(4000, "ok"), (4010, "fault"), (4020, "fault"), (4030, "ok")]:
        plant.feed("door-1", t, last_event=event)
    assert plant.seen("door-faults") == []
    plant.feed("door-1", 4040, last_event="fault")
    assert plant.seen("door-faults") == [("door-1", True, False, 4040)]


def test_unless_inhibits_the_alarm_while_it_holds(make_site: MakeSite) -> None:
    plant = Plant(
        make_site(f"""rules:
  - id: low-pressure
    {TITLE}
    devices: {{types: [booster_pump]}}
    when: outlet_pressure < 0.25
    clear: outlet_pressure >= 0.30
    unless: not running
    priority: high
""")
    )
    plant.feed("pump-1", 0, running=False, outlet_pressure=0.1)  # true, but a stopped pump holds no pressure
    plant.feed("pump-1", 1, running=True)
    plant.feed("pump-1", 2, running=False)
    plant.feed("pump-1", 3, outlet_pressure=0.35)
    plant.feed("pump-1", 4, outlet_pressure=0.1)
    plant.feed("pump-1", 5, outlet_pressure=0.4)
    assert plant.seen() == [
        ("pump-1", True, False, 1),
        ("pump-1", True, True, 2),
        ("pump-1", False, False, 3),
    ]


def suppressed_lighting(scope: str) -> str:
    return f"""rules:
  - id: fire
    {TITLE}
    devices: {{types: [fire_panel]}}
    when: zone_3_state == "fire"
    priority: emergency
  - id: lighting-off
    {TITLE}
    devices: {{types: [lighting_panel]}}
    when: circuit_1_command and not circuit_1_on
    suppressed_by: {{rule: fire, scope: {scope}}}
    priority: low
"""


@pytest.mark.parametrize(("scope", "other_building"), [("building", True), ("site", False), ("device", True)])
def test_a_fire_suppresses_lighting_alarms_in_its_scope(make_site: MakeSite, scope: str, other_building: bool) -> None:
    plant = Plant(make_site(suppressed_lighting(scope)))
    plant.feed("light-1", 0, circuit_1_command=True, circuit_1_on=False)  # B1, as the fire panel
    plant.feed("fire-1", 1, zone_3_state="fire")
    plant.feed("light-2", 2, circuit_1_command=True, circuit_1_on=False)  # B2
    plant.feed("fire-1", 3, zone_3_state="normal")
    by_building = scope != "device"  # the panel is not a lighting device: by device, nothing is suppressed
    assert plant.seen("lighting-off") == [
        ("light-1", True, False, 0),
        *([("light-1", True, True, 1)] if by_building else []),
        *([("light-2", True, False, 2)] if other_building else []),
        *([("light-1", True, False, 3)] if by_building else []),
        *([("light-2", True, False, 3)] if not other_building else []),
    ]


def test_a_condition_that_comes_and_goes_while_suppressed_is_never_announced(make_site: MakeSite) -> None:
    plant = Plant(make_site(suppressed_lighting("building")))
    plant.feed("fire-1", 0, zone_3_state="fire")
    plant.feed("light-1", 1, circuit_1_command=True, circuit_1_on=False)
    plant.feed("light-1", 2, circuit_1_on=True)
    plant.feed("light-1", 3, circuit_1_on=False)
    assert plant.seen("lighting-off") == []
    plant.feed("fire-1", 4, zone_3_state="normal")  # still off when the fire is over: now it is news
    plant.feed("light-1", 5, circuit_1_on=True)
    assert plant.seen("lighting-off") == [("light-1", True, False, 4), ("light-1", False, False, 5)]
