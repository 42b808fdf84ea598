"""The desk's live view of each point: the last value is kept when a device goes quiet, marked with
why it is not fresh, and a device that stopped answering is shown offline until it answers."""

from __future__ import annotations

from facility.model import Quality, Reading
from facility.store.live import LiveValues


def test_a_device_that_stopped_answering_stays_offline_when_it_also_goes_stale() -> None:
    live = LiveValues()
    live.update([Reading("pump-1", "pressure", 0.4, Quality.GOOD, 100)])
    live.update([Reading("pump-1", "pressure", None, Quality.NO_COMM, 200)])  # the poller gave up on it
    live.update([Reading("pump-1", "pressure", None, Quality.STALE, 300)])  # health: nothing for 3 intervals
    shown = live.of("pump-1")["pressure"]
    assert (shown.value, shown.quality, shown.ts) == (0.4, Quality.NO_COMM, 100)  # last known, and why
    assert live.status("pump-1") == (False, 100)

    live.update([Reading("pump-1", "pressure", 0.5, Quality.GOOD, 400)])  # it answers again
    assert live.of("pump-1")["pressure"].quality is Quality.GOOD
    assert live.status("pump-1") == (True, 400)


def test_a_quiet_device_that_said_nothing_of_itself_is_shown_stale() -> None:
    live = LiveValues()
    live.update([Reading("lift-1", "floor", 3, Quality.GOOD, 100)])
    live.update([Reading("lift-1", "floor", None, Quality.STALE, 300)])
    shown = live.of("lift-1")["floor"]
    assert (shown.value, shown.quality, shown.ts) == (3, Quality.STALE, 100)
    assert live.status("lift-1") == (True, 100)
