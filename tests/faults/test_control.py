"""The harness itself, with no fault: every acknowledged message is counted in the store once.

If this fails, the other fault tests say nothing about the service; if it passes, a loss they
report is the fault's doing."""

from __future__ import annotations

import pytest

from tests.faults.harness import Counting, Rig, outcome

pytestmark = pytest.mark.faults


def test_no_fault_loses_nothing(rig: Rig) -> None:
    site = rig.site()
    service = rig.service(site)
    service.start_ready()
    publisher = rig.publisher(site)
    counting = Counting.sqlite(site, publisher)

    publisher.burst(12_000, rate=3000)
    publisher.join()
    publisher.wait_acked()
    result = outcome("no fault", publisher, counting, site.spool)

    assert len(result.acked) == 12_000, result.summary()
    assert result.lost == [], result.summary()
    assert result.duplicates == 0, result.summary()
