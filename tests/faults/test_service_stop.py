"""The service stopped by a deploy (SIGTERM) or killed by a crash (SIGKILL), with the telemetry
store up, each at two moments: SIGTERM in the middle of a live burst, and just after a start while
the service catches up on the backlog the broker kept for it (live load going on); SIGKILL in the
middle of a burst, and right as one ends (its last readings are still on their way to the store).
While the service is away the broker keeps what the devices publish for its kept session.

A QoS 1 message is acknowledged only once its reading is in the store or the spool, so what the
broker acknowledged to the devices must all be in the store after the restart. The readings carry
their device time, and the store keeps one row per device, point and time: a redelivery after the
crash overwrites its first copy, so there are no duplicates either.
"""

from __future__ import annotations

import signal

import pytest

from tests.faults.harness import Counting, Rig, Service, outcome, wait_until

pytestmark = pytest.mark.faults

MESSAGES = 15_000
RATE = 3000  # a second, over the site's four devices


def _clean_stop(code: int | None, service: Service) -> None:
    # A drained stop exits 0; -15 would be the signal killing the process before the drain.
    stopped = f"SIGTERM: exit code {code} (None: still running after 40 s)"
    assert code == 0, f"{stopped}\n{service.log_tail()}"


def _stop_and_restart(rig: Rig, how: signal.Signals, moment: str) -> None:
    site = rig.site()
    service = rig.service(site)
    service.start_ready()
    publisher = rig.publisher(site)
    counting = Counting.sqlite(site, publisher)

    if moment == "mid-backlog":
        _clean_stop(service.term(), service)  # idle: nothing on its way
        publisher.burst(MESSAGES, rate=RATE)  # live load from here on
        publisher.wait_count(MESSAGES // 3)  # the broker keeps a backlog for the service's session
        service.start()
        wait_until(lambda: len(counting.read().seqs) >= MESSAGES // 10, 60, "the backlog flowing into the store")
    else:
        publisher.burst(MESSAGES, rate=RATE)
        if moment == "mid-burst":
            publisher.wait_count(MESSAGES // 2)
        else:
            publisher.join()  # the signal within milliseconds of the burst's last message
    code: int | None = None
    if how == signal.SIGTERM:
        code = service.term()
    else:
        service.kill()
    service.start_ready()
    publisher.join()
    publisher.wait_acked()
    result = outcome(f"{how.name} {moment}", publisher, counting, site.spool)

    assert len(result.acked) == MESSAGES, result.summary()
    assert result.lost == [], f"{result.summary()}\n{service.log_tail()}"
    assert result.duplicates == 0, result.summary()
    if how == signal.SIGTERM:
        _clean_stop(code, service)


@pytest.mark.parametrize("moment", ["mid-burst", "mid-backlog"])
def test_sigterm_loses_nothing(rig: Rig, moment: str) -> None:
    _stop_and_restart(rig, signal.SIGTERM, moment)


@pytest.mark.parametrize("moment", ["mid-burst", "after-burst"])
def test_sigkill_loses_nothing(rig: Rig, moment: str) -> None:
    _stop_and_restart(rig, signal.SIGKILL, moment)
