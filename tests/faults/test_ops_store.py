"""The ops store (PostgreSQL, behind a TCP proxy the test cuts) refused while an alarm is raised,
and the service restarted (SIGTERM, then started) while it is still away.

An ops store that is down delays recording an alarm, never raising it: the outcome is journaled on
local disk before it is applied, and the service starts without the ops store, so once the
database answers again the alarm is there exactly once, and the telemetry kept flowing through
all of it: no reading the broker acknowledged is missing.
"""

from __future__ import annotations

import contextlib

import pytest

from tests.faults.harness import Counting, Rig, outcome, recorded_alarms, wait_until

pytestmark = pytest.mark.faults

RATE = 2500


def test_alarm_raised_while_ops_store_refused_is_recorded_once(pg_url: str, rig: Rig) -> None:
    proxy = rig.proxy(pg_url)
    site = rig.site(ops=proxy.url)
    service = rig.service(site)
    service.start_ready()
    publisher = rig.publisher(site)
    counting = Counting.sqlite(site, publisher)

    publisher.burst(None, rate=RATE)
    publisher.wait_count(3000)
    proxy.cut()
    alarm = publisher.publish({"alarm": 1})  # the rule `alarm > 0` raises an emergency alarm
    wait_until(lambda: alarm in counting.read().alarms, 30, "the alarm reading reaching the service")
    publisher.wait_more(2500)
    code = service.term()
    service.start()
    try:
        service.wait_ready(30)
        started_without_ops = True
    except RuntimeError:  # it exited: it could not start without the ops store
        started_without_ops = False
    publisher.wait_more(2500)
    proxy.restore()
    if not service.running:
        service.start_ready()  # so that what it kept can still be counted
    publisher.stop()
    publisher.wait_acked()
    result = outcome("ops store refused, alarm, restart", publisher, counting, site.spool)
    with contextlib.suppress(TimeoutError):  # judged below, with the rest
        wait_until(lambda: recorded_alarms(pg_url)[0] >= 1, 20, "the alarm in the ops store", interval=0.5)
    rows, activations = recorded_alarms(pg_url)
    print(f"alarm rows={rows} activations={activations} started without the ops store={started_without_ops}")

    problems = []
    if not started_without_ops:
        problems.append("the service did not start while the ops store was refused")
    if (rows, activations) != (1, 1):
        problems.append(f"the alarm is recorded {rows} times with {activations} activations, not once")
    if result.lost:
        problems.append(result.summary())
    if result.duplicates:
        problems.append(f"{result.duplicates} duplicates")
    assert not problems, "\n".join([*problems, f"SIGTERM exit code {code}", service.log_tail(60)])
