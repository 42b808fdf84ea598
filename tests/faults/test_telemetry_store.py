"""The telemetry store away while readings keep coming: InfluxDB 1.x killed and started again on
the same port and data, VictoriaMetrics hung (SIGSTOP) for about ten seconds, and InfluxDB 1.x
hung while the service itself is stopped by a deploy (SIGTERM) and started again.

The service must spool what the store cannot take and replay it once the store answers; a QoS 1
message is acknowledged only once its reading is in the store or the spool, so nothing the broker
acknowledged may be missing afterwards. InfluxDB keeps one point per series and time and the
readings carry their device time, so a replay or redelivery leaves no duplicate. And health is
honest: while the store is away /readyz says so, and once it is back, that it is up again.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.faults.harness import INFLUX_DB, Counting, Outcome, Publisher, Rig, Service, outcome, pause, resume

pytestmark = pytest.mark.faults

RATE = 2500  # a second, over the site's four devices
STORE = "telemetry_store"  # the kind of the part in /readyz


def _judge(result: Outcome, service: Service, during: set[str]) -> None:
    """0 lost, 0 duplicates, and /readyz told the outage (`during`: the states it gave) and the
    recovery."""
    problems = []
    if result.lost:
        problems.append(result.summary())
    if result.duplicates:
        problems.append(f"{result.duplicates} duplicates")
    if during <= {"up", "absent"}:
        problems.append(f"/readyz never said the telemetry store was away (it said: {sorted(during)})")
    part = service.part(STORE)
    if part is None or part["state"] != "up":
        problems.append(f"/readyz after the store came back: {part}")
    print(f"/readyz during the outage: {sorted(during)}; after: {part and part['state']}")
    assert not problems, "\n".join([*problems, service.log_tail()])


def _after_recovery(what: str, publisher: Publisher, counting: Counting, spool: Path) -> Outcome:
    """5,000 more messages once the store is back, then what reached it."""
    publisher.wait_more(5000)
    publisher.stop()
    publisher.wait_acked()
    return outcome(what, publisher, counting, spool, timeout=75)


def test_store_killed_and_restarted_loses_nothing(rig: Rig) -> None:
    influx = rig.influx1()
    site = rig.site(influx={"url": influx.url, "bucket": INFLUX_DB, "write_api": "v1", "token_env": None})
    service = rig.service(site)
    service.start_ready()
    publisher = rig.publisher(site)
    counting = Counting.influx1(influx, publisher)

    publisher.burst(None, rate=RATE)
    publisher.wait_count(5000)
    assert influx.proc is not None
    influx.proc.kill()  # SIGKILL; InfluxDB's WAL keeps what it acknowledged
    influx.proc.wait(10)
    target = publisher.count + 10_000  # the store is away while 10,000 messages come (~4 s)
    during = service.states_while(STORE, lambda _: publisher.count >= target)
    influx.start()
    result = _after_recovery("InfluxDB 1.x killed and restarted", publisher, counting, site.spool)
    if service.part(STORE) is not None:
        service.states_while(STORE, lambda seen: "up" in seen, timeout=30)
    _judge(result, service, during)


def test_store_hung_loses_nothing(rig: Rig) -> None:
    vm = rig.victoria()
    site = rig.site(influx={"url": vm.url, "org": INFLUX_DB, "bucket": INFLUX_DB, "token_env": None})
    service = rig.service(site)
    service.start_ready()
    publisher = rig.publisher(site)
    counting = Counting.victoria(vm, publisher)

    publisher.burst(None, rate=RATE)
    publisher.wait_count(5000)
    pause(vm.proc)  # connections are accepted and never answered
    target = publisher.count + 25_000  # ~10 s hung
    during = service.states_while(STORE, lambda _: publisher.count >= target)
    if during != {"absent"} and during <= {"up"}:  # a hung write may take its timeout to fail
        during |= service.states_while(STORE, lambda seen: bool(seen - {"up"}), timeout=20)
    resume(vm.proc)
    result = _after_recovery("VictoriaMetrics hung ~10 s", publisher, counting, site.spool)
    if service.part(STORE) is not None:
        service.states_while(STORE, lambda seen: "up" in seen, timeout=30)
    _judge(result, service, during)


def test_sigterm_while_store_hung_loses_nothing(rig: Rig) -> None:
    influx = rig.influx1()
    site = rig.site(influx={"url": influx.url, "bucket": INFLUX_DB, "write_api": "v1", "token_env": None})
    service = rig.service(site)
    service.start_ready()
    publisher = rig.publisher(site)
    counting = Counting.influx1(influx, publisher)

    publisher.burst(None, rate=RATE)
    publisher.wait_count(5000)
    pause(influx.proc)
    publisher.wait_more(10_000)  # ~4 s hung, writes in flight
    began = time.monotonic()
    code = service.term(timeout=40)
    stopping_s = time.monotonic() - began
    resume(influx.proc)
    service.start_ready()
    result = _after_recovery("SIGTERM while InfluxDB 1.x hung", publisher, counting, site.spool)
    print(f"the service took {stopping_s:.1f} s to stop; exit code {code}")

    assert result.lost == [], f"{result.summary()}\n{service.log_tail()}"
    assert result.duplicates == 0, result.summary()
    # A deploy waits a bounded time for the stop, and a drained stop exits 0.
    assert code == 0, f"exit code {code} (None: still running after 40 s)\n{service.log_tail()}"
