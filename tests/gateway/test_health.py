"""Device health: stale means the device's data is old, never that the gateway or its event loop
was busy. Checks are driven with explicit times (and a clock the test sets), so no test waits."""

from __future__ import annotations

import time
from pathlib import Path

from facility.model import Quality, Reading
from facility.site import Site, load_site
from gateway.health import CHECK_S, Health


class Clock:
    """The time Health reads, set by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def site(tmp_path: Path, devices: str) -> Site:
    path = tmp_path / "site.yaml"
    path.write_text(f"site: {{id: t}}\nuse_rule_library: false\ndevices:\n{devices}")
    return load_site(path)


def good(device: str, point: str = "floor") -> list[Reading]:
    return [Reading(device, point, 1, Quality.GOOD, time.time_ns())]


def test_a_polled_device_is_left_to_its_poller_however_long_it_was_not_asked(tmp_path: Path) -> None:
    """Interval 0 is "as fast as the bus allows"; writes holding the bus, a demoted device's backoff
    or a late loop keep the poller from asking. None of that is the device's silence, and a device
    that does not answer is published as no communication by the poller, not stale on top."""
    plant = site(
        tmp_path,
        "  - {id: pump-fast, profile: booster_pump, modbus: {port: 15020, unit: 1, interval: 0}}\n"
        "  - {id: pump-slow, profile: booster_pump, modbus: {port: 15020, unit: 2, interval: 200ms}}\n"
        "  - {id: pump-dead, profile: booster_pump, modbus: {port: 15020, unit: 3, interval: 200ms}}\n",
    )
    published: list[Reading] = []
    health = Health(plant, published.extend)
    health.seen(good("pump-fast", "outlet_pressure") + good("pump-slow", "outlet_pressure"))
    health.seen(good("pump-dead", "outlet_pressure"))
    health.seen([Reading("pump-dead", "outlet_pressure", None, Quality.NO_COMM, time.time_ns())])
    now = time.monotonic()
    for later in (0.001, 0.5, CHECK_S, 10 * CHECK_S, 3600.0):
        health.check(now + later)
    assert published == []
    assert health.stale == set()


def test_a_push_device_without_an_interval_is_not_judged(tmp_path: Path) -> None:
    """An interval of 0 promises no rhythm: 3 x 0 s would call every check's gap silence."""
    plant = site(tmp_path, "  - {id: lift-1, profile: elevator, mqtt: {topic: a/b, interval: 0}}\n")
    published: list[Reading] = []
    health = Health(plant, published.extend)
    health.seen(good("lift-1"))
    now = time.monotonic()
    health.check(now + 0.001)
    health.check(now + CHECK_S)
    assert published == []


def test_a_silent_push_device_is_marked_stale_once_after_three_intervals(tmp_path: Path) -> None:
    plant = site(tmp_path, "  - {id: lift-1, profile: elevator, mqtt: {topic: a/b, interval: 1s}}\n")
    clock = Clock()
    published: list[Reading] = []
    health = Health(plant, published.extend, clock)
    start = clock.now
    clock.now = start + 0.5
    health.seen(good("lift-1"))
    for tick in (1, 2, 3):  # on time; silent for 0.5, 1.5, 2.5 s: within 3 intervals
        health.check(start + tick * CHECK_S)
    assert published == []
    health.check(start + 4 * CHECK_S)  # silent for 3.5 s
    assert {r.quality for r in published} == {Quality.STALE}
    assert {r.point for r in published} == set(plant.profile_of(plant.device("lift-1")).points)
    count = len(published)
    health.check(start + 5 * CHECK_S)
    assert len(published) == count  # once, not at every check

    clock.now = start + 5.5
    health.seen(good("lift-1"))  # heard again: fresh, and judged afresh
    assert health.stale == set()
    for tick in (6, 7, 8):
        health.check(start + tick * CHECK_S)
    assert len(published) == count
    health.check(start + 9 * CHECK_S)
    assert len(published) == 2 * count


def test_time_the_event_loop_was_late_is_not_the_devices_silence(tmp_path: Path) -> None:
    """The loop is held up for 9 s (a CPU-bound neighbour, a long blocking call). The device kept
    publishing, but its messages wait unread in the socket when the late check runs first."""
    plant = site(tmp_path, "  - {id: lift-1, profile: elevator, mqtt: {topic: a/b, interval: 1s}}\n")
    clock = Clock()
    published: list[Reading] = []
    health = Health(plant, published.extend, clock)
    start = clock.now
    clock.now = start + 0.5
    health.seen(good("lift-1"))
    health.check(start + 1 * CHECK_S)
    health.check(start + 2 * CHECK_S)
    clock.now = start + 12.0  # the check due at 3 s runs 9 s late, before the waiting messages
    health.check(clock.now)
    assert published == []
    clock.now += 0.01
    health.seen(good("lift-1"))  # the messages that waited
    health.check(clock.now + CHECK_S)
    assert published == []

    # A device that is then really silent is still found, after 3 intervals of loop time.
    silent_from = clock.now
    for tick in (2, 3):
        health.check(silent_from + tick * CHECK_S)
    assert published == []
    health.check(silent_from + 4 * CHECK_S)
    assert {r.quality for r in published} == {Quality.STALE}


def test_a_loop_that_is_always_late_still_finds_a_silent_device(tmp_path: Path) -> None:
    """Every check wakes 0.5 s late: silence grows by one check's worth of loop time per check, so
    a device that stopped is still marked, only later by the time the loop lost."""
    plant = site(tmp_path, "  - {id: lift-1, profile: elevator, mqtt: {topic: a/b, interval: 1s}}\n")
    clock = Clock()
    published: list[Reading] = []
    health = Health(plant, published.extend, clock)
    start = clock.now
    health.seen(good("lift-1"))
    for tick in (1, 2, 3):  # 1.5 s apart: 4.5 s of clock, 3 s of loop time
        health.check(start + tick * 1.5 * CHECK_S)
    assert published == []
    health.check(start + 4 * 1.5 * CHECK_S)
    assert {r.quality for r in published} == {Quality.STALE}


def test_a_device_that_said_offline_is_not_made_stale_and_one_back_online_is_given_its_intervals(
    tmp_path: Path,
) -> None:
    """Its status topic is the device's own word: offline (its points are no communication) must
    not turn into stale three intervals on; online counts its silence from then, not from before."""
    plant = site(tmp_path, "  - {id: lift-1, profile: elevator, mqtt: {topic: a/b, interval: 1s}}\n")
    clock = Clock()
    published: list[Reading] = []
    health = Health(plant, published.extend, clock)
    start = clock.now
    health.seen(good("lift-1"))
    health.status("lift-1", False)
    for tick in range(1, 11):
        health.check(start + tick * CHECK_S)
    assert published == []  # ten intervals away: still no communication, never stale

    clock.now = start + 10 * CHECK_S
    health.status("lift-1", True)
    for tick in (11, 12, 13):  # its data is due within 3 intervals of coming back
        health.check(start + tick * CHECK_S)
    assert published == []
    health.check(start + 14 * CHECK_S)  # and then it is overdue
    assert {r.quality for r in published} == {Quality.STALE}
