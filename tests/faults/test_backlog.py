"""A backlog of readings without a device timestamp: the service is stopped, one device publishes
a few thousand messages (the broker queues them for the service's kept session), the service
starts and takes them all at once.

Readings without a device time take the time they are received, and a backlog is received in a
flood: each reading must still get a time of its own, in the order the device sent them, or the
store (one row per device, point and time) keeps one of each batch and drops the rest silently.
The service was stopped cleanly before the backlog was published, so nothing is delivered twice
here; after a crash a redelivered message would get a second receive time, and so a duplicate row.
"""

from __future__ import annotations

import itertools
import signal

import pytest

from tests.faults.harness import Counting, Rig, outcome

pytestmark = pytest.mark.faults

BACKLOG = 3000


def test_backlog_without_device_time_is_kept_in_order(rig: Rig) -> None:
    site = rig.site(devices=1, timestamps=False)
    service = rig.service(site)
    service.start_ready()  # its session and subscription are made
    code = service.term()
    assert code in (0, -signal.SIGTERM), f"SIGTERM: exit code {code}\n{service.log_tail()}"
    publisher = rig.publisher(site)
    counting = Counting.sqlite(site, publisher)

    publisher.burst(BACKLOG, rate=BACKLOG)  # a second's worth of one device
    publisher.join()
    publisher.wait_acked()
    service.start_ready()
    result = outcome("backlog without device time", publisher, counting, site.spool)

    assert result.lost == [], f"{result.summary()}\n{service.log_tail()}"
    assert result.duplicates == 0, result.summary()
    times = [result.tally.times[seq][0] for seq in sorted(result.tally.seqs)]
    assert len(set(times)) == len(times), f"{len(times) - len(set(times))} readings share a time with another"
    out_of_order = sum(1 for a, b in itertools.pairwise(times) if b <= a)
    assert out_of_order == 0, f"{out_of_order} readings are timed before the one the device sent earlier"
