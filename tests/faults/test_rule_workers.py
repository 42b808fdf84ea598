"""Two rule workers of one estate (`facility run --parts rules`) on one PostgreSQL ops store, the
estate's gateway in a process of its own sending its readings up, and the worker that owns the
site killed (SIGKILL) as a fault begins.

One worker owns the site (facility.store.lease) and judges it; the other stands by. The owner is
killed right after the fire panel's alarm reading: it may or may not have recorded the alarm.
Either way the standby takes the site over, rebuilds its conditions from the open alarms, reads
on from where the dead owner stopped acknowledging (the rules' kept session is the site's), and
the alarm is in the ops store once, raised once. The worker started again stands by; and when the
server ends the new owner's lock session, that owner stops (exit 1) and the other takes over.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.faults.harness import Rig, Service, recorded_alarms, wait_until, write_fault_site
from testsupport.pg import end_lock_sessions

pytestmark = pytest.mark.faults

LEASE_S = 10.0  # the most a site may go unjudged after its owner died (docs/scale-out.md)


def lease_state(worker: Service) -> str | None:
    part = worker.part("lease")
    return None if part is None else str(part["state"])


def test_a_rule_worker_killed_during_a_fault_hands_its_site_over(pg_url: str, rig: Rig) -> None:
    estate_site = write_fault_site(rig.folder / "estate", rig.broker, uplink=rig.broker.url)
    workers = rig.processes(estate_site.site_id, "rules", ("worker-a", "worker-b"), ops=pg_url)
    estate = rig.service(estate_site, parts="gateway", name="estate")
    owner, standby = workers
    owner.start_ready()
    wait_until(lambda: lease_state(owner) == "up", 30, "the first worker owning the site")
    standby.start_ready()
    wait_until(lambda: lease_state(standby) == "degraded", 30, "the second worker standing by")
    estate.start_ready()
    publisher = rig.publisher(estate_site)

    publisher.burst(1500, rate=500, extra=lambda i: {"alarm": 0} if i % 10 == 0 else None)
    publisher.join()
    publisher.publish({"alarm": 1}, device=0)  # the fire panel goes into alarm ...
    owner.kill()  # ... and the worker judging the site dies with it
    killed = time.monotonic()
    publisher.burst(None, rate=5, extra=lambda i: {"alarm": 1}, device=0)  # the panel stays in alarm
    wait_until(lambda: recorded_alarms(pg_url)[0] >= 1, 30, "the alarm in the ops store", interval=0.2)
    handed_over = time.monotonic() - killed
    publisher.stop()
    assert lease_state(standby) == "up", "the alarm was recorded, but not by the standby"

    publisher.publish({"alarm": 0}, device=0)  # the fire is out: once this is judged, all before it was
    wait_until(lambda: recorded_alarms(pg_url, ("returned to normal",))[1] >= 1, 30, "the alarm returning to normal")
    assert recorded_alarms(pg_url) == (1, 1), "the alarm must be in the store once, raised once"
    assert handed_over < LEASE_S, f"the site went {handed_over:.1f} s unjudged"
    print(f"handed over and recorded {handed_over:.2f} s after the owner was killed")

    owner.start_ready()  # back under its name: the site has an owner, so it stands by
    wait_until(lambda: lease_state(owner) == "degraded", 30, "the restarted worker standing by")
    assert lease_state(standby) == "up"

    # The owner's lock session ended by the server (as when it loses its network): it cannot show
    # that it still owns the site, so it stops, exit 1, and the worker standing by takes over.
    assert asyncio.run(end_lock_sessions(pg_url)) == 1
    wait_until(lambda: standby.proc is not None and standby.proc.poll() is not None, 15, "the owner stopping")
    assert standby.proc is not None and standby.proc.returncode == 1, standby.log_tail()
    assert "the lease's connection failed" in standby.log_text()
    wait_until(lambda: lease_state(owner) == "up", 15, "the worker standing by taking over")
