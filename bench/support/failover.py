"""Failover of the rule workers, for bench/scale.py: two `facility run --parts rules` on one
PostgreSQL database (a fresh one on the server this machine runs), the owner killed (SIGKILL)
and, at once, a fire reading for a device: the time from the kill until that alarm is in the ops
store. Each round kills the owner of the moment and starts it again, to stand by."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench.support.parts import ALARM_RULE, BenchFailed, Part, site_file
from facility.model import Quality, Reading
from facility.readings_wire import encode, readings_topic
from testsupport.pg import alarm_counts, fresh_database_url
from testsupport.servers import Mosquitto

SITE = "failover"
WAIT_S = 30.0


def recorded(url: str, device: str) -> int:
    """Alarm rows of the bench's fire rule for `device` in the ops store."""
    return asyncio.run(alarm_counts(url, ALARM_RULE, device))[0]


def until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        if time.monotonic() > deadline:
            raise BenchFailed(f"{what}: not within {WAIT_S:g} s")
        time.sleep(0.05)


class Estate:
    """The estate's gateway as the rules see it: readings on its uplink topics, at QoS 1."""

    def __init__(self, broker: Mosquitto) -> None:
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-failover-estate")
        connected = threading.Event()
        self._client.on_connect = lambda *_: connected.set()
        self._client.connect("127.0.0.1", broker.port)
        self._client.loop_start()
        if not connected.wait(10):
            raise BenchFailed("the bench's estate did not connect to the broker")

    def fire(self, device: str, value: int) -> None:
        reading = Reading(device, "p0", value, Quality.GOOD, time.time_ns())
        self._client.publish(readings_topic(SITE, device), encode([reading]), qos=1)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def failover(broker: Mosquitto, folder: Path, rounds: int = 3) -> dict[str, object]:
    """Seconds from killing the owner to the alarm it missed being recorded, per round; and the
    workers' memory."""
    with fresh_database_url() as url:
        workers = [
            Part(folder / n, site_file(folder / n, broker.url, "var/t.db", SITE, ops=url), n, "rules") for n in "ab"
        ]
        estate = Estate(broker)
        try:
            owner, standby = workers
            owner.start()
            until(lambda: owner.state_of("lease") == "up", "the first worker owning the site")
            standby.start()
            until(lambda: standby.state_of("lease") == "degraded", "the second worker standing by")
            took = []
            for r in range(rounds):
                device = f"d{r}"
                owner.kill()
                killed = time.monotonic()
                while not recorded(url, device):  # the panel repeats its alarm, as a fire panel does
                    estate.fire(device, 1)
                    if time.monotonic() - killed > WAIT_S:
                        raise BenchFailed(f"round {r}: no alarm {WAIT_S:g} s after the owner was killed")
                    time.sleep(0.05)
                took.append(time.monotonic() - killed)
                if recorded(url, device) != 1:
                    raise BenchFailed(f"round {r}: the alarm of {device} was recorded more than once")
                estate.fire(device, 0)
                owner.start()
                until(lambda w=owner: w.state_of("lease") == "degraded", f"round {r}: the killed worker standing by")
                owner, standby = standby, owner
            rss = {w.name: round(w.rss_mb(), 1) for w in workers}
        finally:
            estate.close()
            for w in workers:
                if w.proc is not None and w.proc.poll() is None:
                    w.kill()
    return {
        "failover_s": [round(t, 3) for t in took],
        "failover_max_s": round(max(took), 3),
        "rules_worker_peak_rss_mb": rss,
    }
