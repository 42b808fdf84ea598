"""An estate's gateway in a process of its own, its readings going up to the centre over MQTT
(`facility/v1/readings/<site>/<device>`), and that uplink cut for a while under load.

Two `facility run` processes of one estate, on one broker as a site with a centre runs them:
- the estate's (`--parts gateway,rules,api`): it reads the devices, judges them with its own rules
  and serves a local desk; its readings go up through a TCP proxy the test cuts;
- the centre's (`--parts writer,rules,api`): it reads the estate's readings from the broker into
  its telemetry store and judges them with the same rules.

Every device message is numbered. While the uplink is cut, the estate keeps reading, raises an
emergency on its local desk at once, and spools what the centre has not acknowledged. Afterwards
every acknowledged message is in the centre's store, the readings the rules judge reach the centre
before the routine backlog (an observer on the broker sees the order), and the emergency is on the
centre's desk too, raised once.
"""

from __future__ import annotations

import contextlib
import json
import threading
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from facility.readings_wire import decode, device_of, readings_filter
from tests.faults.harness import (
    INFLUX_DB,
    RULE_ID,
    SERVICE_USER,
    Counting,
    FaultSite,
    Rig,
    Service,
    outcome,
    wait_until,
    write_fault_site,
)

pytestmark = pytest.mark.faults

RATE = 400  # messages a second from the estate's devices
CUT_MESSAGES = 6000  # published while the uplink is cut: 15 s at RATE
JUDGED_EVERY = 10  # every tenth message also carries `alarm: 0`, a reading the rules judge


class Observer:
    """Every readings message of the estate as the centre's broker hands it on, in that order:
    (point, message number) per reading. Subscribed at QoS 1 before the load starts."""

    def __init__(self, rig: Rig, site: FaultSite, seq_of_ts: Any) -> None:
        self.seen: list[tuple[str, int]] = []
        self._lock = threading.Lock()
        self._site_id = site.site_id
        self._seq_of_ts = seq_of_ts
        self._subscribed = threading.Event()
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id="faults-observer")
        c.username_pw_set(SERVICE_USER, rig.broker.passwords[SERVICE_USER])
        c.on_connect = lambda client, *_: client.subscribe(readings_filter(site.site_id), qos=1)
        c.on_subscribe = lambda *_: self._subscribed.set()
        c.on_message = self._message
        c.connect("127.0.0.1", rig.broker.port)
        c.loop_start()
        self._client = c
        if not self._subscribed.wait(15):
            raise TimeoutError("the observer did not subscribe")

    def _message(self, _c: Any, _u: Any, message: paho.MQTTMessage) -> None:
        device = device_of(message.topic, self._site_id)
        rows = [
            (r.point, int(r.value) if r.point == "seq" else self._seq_of_ts(r.ts // 1_000_000))
            for r in decode(device, message.payload)
        ]
        with self._lock:
            self.seen += rows

    def order(self) -> list[tuple[str, int]]:
        with self._lock:
            return list(self.seen)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def alarms_of(service: Service) -> list[dict[str, Any]]:
    """The alarms of the fault rule on a desk (its API), any state."""
    status, body = service.get("/api/v1/alarms?open=false")
    assert status == 200, body
    return [a for a in json.loads(body)["items"] if a["rule"] == RULE_ID]


def test_uplink_cut_loses_nothing_and_sends_what_rules_judge_first(rig: Rig) -> None:
    centre_site = write_fault_site(rig.folder / "centre", rig.broker)
    proxy = rig.proxy(rig.broker.url)
    estate_site = write_fault_site(rig.folder / "estate", rig.broker, site_id=centre_site.site_id, uplink=proxy.url)
    centre = rig.service(centre_site, parts="writer,rules,api", name="centre")
    estate = rig.service(estate_site, parts="gateway,rules,api", name="estate")
    centre.start_ready()
    estate.start_ready()
    publisher = rig.publisher(estate_site)
    observer = Observer(rig, estate_site, publisher.seq_of_ts)
    rig.enter(contextlib.closing(observer))
    counting = Counting.sqlite(centre_site, publisher)

    publisher.burst(None, rate=RATE, extra=lambda i: {"alarm": 0} if i % JUDGED_EVERY == 0 else None)
    wait_until(lambda: len(counting.read().seqs) > 500, 30, "readings reaching the centre's store")
    proxy.cut()
    cut_from = publisher.count
    wait_until(lambda: (estate.part("uplink") or {}).get("state") == "down", 15, "the estate seeing its uplink cut")
    publisher.wait_more(CUT_MESSAGES // 3)
    fire = publisher.publish({"alarm": 1}, device=0)
    local = wait_until(lambda: alarms_of(estate), 10, "the emergency on the estate's own desk")
    publisher.wait_more(CUT_MESSAGES * 2 // 3)
    assert alarms_of(centre) == [], "the centre raised an alarm it cannot have heard of"
    cut_to = publisher.count
    proxy.restore()
    publisher.wait_more(RATE * 2)  # the load goes on while the backlog goes up
    publisher.stop()
    publisher.wait_acked(60)
    result = outcome("uplink cut", publisher, counting, estate_site.spool, timeout=120)

    assert result.lost == [], f"{result.summary()}\nestate log:\n{estate.log_tail()}"
    assert result.duplicates == 0, result.summary()
    central = wait_until(lambda: alarms_of(centre), 30, "the emergency on the centre's desk after the cut")
    assert len(central) == 1 and len(alarms_of(centre)) == 1, central
    assert len(alarms_of(estate)) == 1, alarms_of(estate)
    assert local[0]["device"] == central[0]["device"] == estate_site.devices[0], (local, central)
    assert fire in counting.read().alarms

    # The order the backlog reached the broker in: what the rules judge before the routine readings.
    order = [(point, seq) for point, seq in observer.order() if cut_from <= seq < cut_to]
    judged = [i for i, (point, _) in enumerate(order) if point == "alarm"]
    routine = [i for i, (point, _) in enumerate(order) if point == "seq"]
    assert judged and routine, "the observer saw no backlog"
    before = sum(1 for i in routine if i < judged[-1])
    assert before <= len(routine) // 10, (  # a batch in flight at the cut may go again first
        f"{before} of {len(routine)} routine readings of the cut reached the centre before its last judged one"
    )


WRITER_MESSAGES = 12_000
WRITER_RATE = 1500


def test_a_writer_killed_in_the_shared_group_loses_nothing(rig: Rig) -> None:
    """Two writers share the estate's readings (`$share/...`), into one InfluxDB. One is killed
    (SIGKILL) under load and started again under its name: the broker kept its session, with what
    it had not acknowledged, and the other writer took its share meanwhile."""
    influx = rig.influx1()
    store = {"url": influx.url, "bucket": INFLUX_DB, "write_api": "v1", "token_env": None}
    estate_site = write_fault_site(rig.folder / "estate", rig.broker, uplink=rig.broker.url)
    writers = rig.processes(estate_site.site_id, "writer", ("writer-a", "writer-b"), influx=store)
    estate = rig.service(estate_site, parts="gateway", name="estate")
    for process in (*writers, estate):
        process.start_ready()
    publisher = rig.publisher(estate_site)
    counting = Counting.influx1(influx, publisher)

    publisher.burst(WRITER_MESSAGES, rate=WRITER_RATE)
    publisher.wait_count(WRITER_MESSAGES // 3)
    shared = [w.metric("facility_mqtt_messages_received_total") or 0 for w in writers]
    writers[0].kill()
    publisher.wait_more(WRITER_MESSAGES // 4)
    writers[0].start_ready()
    publisher.join()
    publisher.wait_acked(60)
    result = outcome("writer SIGKILL", publisher, counting, writers[0].site.spool, timeout=120)

    assert all(shared), f"a writer took no share before the kill: {shared}"
    assert result.lost == [], f"{result.summary()}\nwriter log:\n{writers[0].log_tail()}"
    assert result.duplicates == 0, result.summary()


def test_the_estates_gateway_killed_and_restarted_loses_nothing(rig: Rig) -> None:
    """The estate's gateway killed (SIGKILL) under load and started again: what its devices'
    broker had not had acknowledged comes again, what it had spooled goes up after the restart,
    and the centre's store holds every acknowledged message."""
    centre_site = write_fault_site(rig.folder / "centre", rig.broker)
    estate_site = write_fault_site(
        rig.folder / "estate", rig.broker, site_id=centre_site.site_id, uplink=rig.broker.url
    )
    centre = rig.service(centre_site, parts="writer,rules", name="centre")
    estate = rig.service(estate_site, parts="gateway", name="estate")
    centre.start_ready()
    estate.start_ready()
    publisher = rig.publisher(estate_site)
    counting = Counting.sqlite(centre_site, publisher)

    publisher.burst(WRITER_MESSAGES, rate=WRITER_RATE, extra=lambda i: {"alarm": 0} if i % JUDGED_EVERY == 0 else None)
    publisher.wait_count(WRITER_MESSAGES // 3)
    estate.kill()
    publisher.wait_more(WRITER_MESSAGES // 4)
    estate.start_ready()
    publisher.join()
    publisher.wait_acked(60)
    result = outcome("estate SIGKILL", publisher, counting, estate_site.spool, timeout=120)

    assert result.lost == [], f"{result.summary()}\nestate log:\n{estate.log_tail()}"
    assert result.duplicates == 0, result.summary()
