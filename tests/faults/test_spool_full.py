"""The spool disk full while the telemetry store is down: a 1 MiB tmpfs under the spool (the
disk really fills: ENOSPC), or the site's `spool_limit_mb` on an ordinary disk.

When a disk fills, routine telemetry may be dropped, but only as counted (the log says so and
/metrics has facility_readings_dropped_total); the readings alarm rules use are never dropped;
and the service stays within bounded memory instead of holding everything the disk refused. So:
every acknowledged reading is in the store once it is back, except exactly as many as were
counted dropped, and none of the alarm rule's point.

The devices are wide (each message carries many points, as a power meter's does): some 40,000
readings a second, which the service takes with the store up in flat memory. A service that holds
what the disk refused grows by about 5 MiB a second of outage; a bounded one stops growing once
the spool is full, so the second half of the outage may add at most MEMORY_BOUND_KB.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.faults.harness import INFLUX_DB, Counting, Rig, Tally, outcome, tmpfs, wide_points

pytestmark = pytest.mark.faults

MESSAGES = 16_000
RATE = 2000
WIDTH = 20  # points besides `seq` in each message
ALARM_EVERY = 20  # every 20th message also carries the alarm rule's point (`alarm: 0`)
MEMORY_BOUND_KB = 12 * 1024  # resident memory the second half of the outage may add


@pytest.mark.parametrize("full", ["tmpfs", "spool_limit_mb"])
def test_full_spool_drops_only_counted_routine_readings(rig: Rig, tmp_path: Path, full: str) -> None:
    vm = rig.victoria()
    spool = tmp_path / "spool"
    if full == "tmpfs":
        rig.enter(tmpfs(spool, "1m"))
    site = rig.site(
        influx={"url": vm.url, "org": INFLUX_DB, "bucket": INFLUX_DB, "token_env": None},
        spool=spool,
        spool_limit_mb=1 if full == "spool_limit_mb" else None,
        width=WIDTH,
    )
    service = rig.service(site)
    service.start_ready()
    baseline_kb = service.rss_kb()
    publisher = rig.publisher(site)
    counting = Counting.victoria(vm, publisher)

    vm.stop()  # SIGTERM: VictoriaMetrics keeps what it took, for its restart on the same data
    first = publisher.count
    publisher.burst(MESSAGES, rate=RATE, extra=lambda i: {"alarm": 0} if i % ALARM_EVERY == 0 else None)
    samples: list[tuple[int, int]] = []  # (messages published, resident kB)
    while publisher.burst_running:  # sampling, not waiting: the burst's end is the condition
        samples.append((publisher.count, service.rss_kb()))
        time.sleep(0.2)
    publisher.join()
    publisher.wait_acked()
    samples.append((publisher.count, service.rss_kb()))
    halfway_kb = max(kb for n, kb in samples if n <= first + MESSAGES // 2)
    peak_kb = max(kb for _, kb in samples)
    vm.start()

    acked = publisher.acked
    alarm_readings = {first + i for i in range(0, MESSAGES, ALARM_EVERY)} & acked
    wide = {(point, seq) for seq in acked for point in wide_points(WIDTH)}

    def everything(tally: Tally) -> bool:
        return acked <= tally.seqs.keys() and alarm_readings <= tally.alarms.keys() and wide <= tally.wide.keys()

    result = outcome(f"spool full ({full})", publisher, counting, site.spool, timeout=75, complete=everything)
    lost_alarm = sorted(alarm_readings - result.tally.alarms.keys())
    lost = len(result.lost) + len(lost_alarm) + len(wide - result.tally.wide.keys())  # readings
    dropped = service.metric("facility_readings_dropped_total")
    expected = len(acked) + len(alarm_readings) + len(wide)
    print(
        f"readings: acknowledged={expected} lost={lost} dropped (counted)={dropped} "
        f"alarm point lost={len(lost_alarm)} of {len(alarm_readings)}; "
        f"memory {baseline_kb // 1024} MiB at start, {halfway_kb // 1024} halfway, peak {peak_kb // 1024}"
    )

    problems = []
    if dropped is None:
        problems.append("/metrics does not answer facility_readings_dropped_total: drops are not counted")
    elif lost > dropped:
        # Counted can exceed lost, never the other way: a write the store took but answered too
        # late (a timeout) goes to the spool all the same, and may be dropped from there.
        problems.append(f"{lost} readings lost but only {dropped:g} counted dropped: {result.summary()}")
    if lost and not re.search(r"drop", service.log_text(), re.IGNORECASE):
        problems.append(f"{lost} readings were dropped and the log does not say so")
    if lost_alarm:
        problems.append(f"{len(lost_alarm)} readings of the alarm rule's point lost (first: {lost_alarm[:10]})")
    if peak_kb - halfway_kb > MEMORY_BOUND_KB:
        problems.append(
            f"resident memory kept growing while the disk was full: {(peak_kb - halfway_kb) // 1024} MiB"
            f" in the second half of the outage ({baseline_kb // 1024} MiB at start, peak {peak_kb // 1024})"
        )
    if result.duplicates:
        problems.append(f"{result.duplicates} duplicates")
    assert not problems, "\n".join([*problems, service.log_tail(30)])
