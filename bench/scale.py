"""The centre's writers: readings per second from the estates' uplink topics
(`facility/v1/readings/<site>/<device>`, MessagePack at QoS 1) into the central store, with one
and with two `facility run --parts writer` processes sharing the subscription, against
`mosquitto_sub` draining the same backlog in the same run (the ceiling); and what the message
format costs.

Each run: the writers start and subscribe (mosquitto_sub: subscribes with a kept session and
leaves), and are held (SIGSTOP); N messages of READINGS_PER_MESSAGE readings each are published at
QoS 1 and queued for them (split between the members of the shared group); they are let go and
drain. A writer's rate is the readings its store took (`facility_readings_stored_total` on its
/metrics, polled) over the time from letting it go until its store held them all; every answer is
checked, and a run that does not store every reading within DRAIN_LIMIT_S fails the bench.

The store is VictoriaMetrics (InfluxDB's write API, as the centre's store is written), and then
a SQLite file per writer (the writers share nothing but the broker): the first says what one
store on the same cores allows, the second what the writers themselves scale to. On a
2-core machine the broker, the store and the writers share the cores: the ratio says what a
second writer buys here, not on a centre's servers.

Rule workers do not share a site's readings: one owns the site and judges, another stands by
(facility.store.lease), so a second worker buys failover, not throughput. `rule_workers` says how
quickly: the owner is killed and a fire reading follows at once, and the time until that alarm
is in the ops store is measured over three rounds (bench/support/failover.py), with each worker's
peak memory.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import msgspec
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.support.failover import failover
from bench.support.parts import DEVICES, READINGS_PER_MESSAGE, BenchFailed, Part, site_file
from facility.model import Quality, Reading
from facility.readings_wire import decode, encode, readings_filter, readings_topic
from testsupport.influx_servers import VictoriaMetrics
from testsupport.servers import Mosquitto

DRAIN_LIMIT_S = 180.0
POLL_S = 0.05  # a writer's /metrics, polled while it drains: a few percent of a drain of seconds


def site_of(run: int) -> str:
    """Each run's estate: its topics and its writers' shared group are its own, so that the kept
    sessions of one run (in the group, and queued for) take nothing of the next run's backlog."""
    return f"scale{run}"


def backlog(broker: Mosquitto, messages: int, run: int) -> None:
    """Publish the messages at QoS 1 and wait until the broker has acknowledged every one. Each
    run's readings have times of their own, so no run overwrites another's in the store."""
    done = threading.Semaphore(0)
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-estate-{run}")
    c.max_inflight_messages_set(1000)
    c.on_publish = lambda *_: done.release()
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    t0 = (run * 10_000_000 + 1) * 1_000_000_000
    try:
        for m in range(messages):
            device = f"d{m % DEVICES}"
            rows = [Reading(device, f"p{k}", m, Quality.GOOD, t0 + m) for k in range(READINGS_PER_MESSAGE)]
            c.publish(readings_topic(site_of(run), device), encode(rows), qos=1)
        for _ in range(messages):
            if not done.acquire(timeout=60):
                raise BenchFailed("the broker did not acknowledge the backlog")
    finally:
        c.disconnect()
        c.loop_stop()


def writers_rate(broker: Mosquitto, writers: list[Part], messages: int, run: int) -> float:
    """Readings per second of the writers draining a backlog together: started and subscribed,
    held (SIGSTOP) while the backlog is queued for them, then let go at once; the time runs from
    letting them go until their stores hold every reading, so that no process start is in it."""
    for w in writers:
        w.start()
    for w in writers:
        w.pause()
    try:
        backlog(broker, messages, run)
    finally:
        for w in writers:
            w.resume()
    let_go = time.monotonic()
    total = messages * READINGS_PER_MESSAGE
    while True:
        stored = int(sum(w.metric("facility_readings_stored_total") for w in writers))
        now = time.monotonic()
        if stored >= total:
            return total / (now - let_go)
        if now - let_go > DRAIN_LIMIT_S:
            raise BenchFailed(f"{len(writers)} writers stored {stored} of {total} within {DRAIN_LIMIT_S:g} s")
        time.sleep(POLL_S)


def ceiling(broker: Mosquitto, messages: int, run: int) -> float:
    """mosquitto_sub in the shared group, acknowledging each message: readings per second."""
    session = ["mosquitto_sub", "-p", str(broker.port), "-q", "1", "-c", "-i", f"bench-ceiling-{run}"]
    site = site_of(run)
    session += ["-t", f"$share/facility-writers-{site}/{readings_filter(site)}"]
    subprocess.run([*session, "-E"], check=True, timeout=30)
    backlog(broker, messages, run)
    out = subprocess.run(
        [*session, "-F", "%U", "-C", str(messages), "-W", str(int(DRAIN_LIMIT_S))], capture_output=True, text=True
    )
    stamps = [float(x) for x in out.stdout.split()]
    if len(stamps) != messages:
        raise BenchFailed(f"mosquitto_sub received {len(stamps)} of {messages}")
    return (len(stamps) - 1) * READINGS_PER_MESSAGE / (stamps[-1] - stamps[0])


def format_cost(n: int = 20_000) -> dict[str, float]:
    """Encode and decode per reading, and bytes per reading, beside JSON of the same readings."""
    rows = [Reading("pump-b2-1", f"point_{k}", 0.1 * k, Quality.GOOD, 1_700_000_000_000_000_000 + k) for k in range(10)]
    body = encode(rows)
    as_json = msgspec.json.encode(
        [{"point": r.point, "value": r.value, "quality": r.quality, "ts": r.ts} for r in rows]
    )
    if decode("pump-b2-1", body) != rows:
        raise BenchFailed("a message did not decode to the readings encoded")
    t = time.perf_counter()
    for _ in range(n):
        encode(rows)
    enc = (time.perf_counter() - t) / (n * len(rows))
    t = time.perf_counter()
    for _ in range(n):
        decode("pump-b2-1", body)
    dec = (time.perf_counter() - t) / (n * len(rows))
    return {
        "encode_us_per_reading": round(enc * 1e6, 3),
        "decode_us_per_reading": round(dec * 1e6, 3),
        "bytes_per_reading": round(len(body) / len(rows), 1),
        "json_bytes_per_reading": round(len(as_json) / len(rows), 1),
    }


def main(messages: int, stores: list[str]) -> dict[str, object]:
    if shutil.which("mosquitto_sub") is None:
        sys.exit("needs mosquitto_sub (apt-get install -y mosquitto-clients)")
    runs = {kind: one_store(messages, kind) for kind in stores}
    with tempfile.TemporaryDirectory(prefix="bench-failover-") as tmp:
        broker = Mosquitto(Path(tmp))
        broker.start()
        try:
            workers = failover(broker, Path(tmp))
        finally:
            broker.stop()
    return {
        "bench": "scale",
        "messages": messages,
        "readings_per_message": READINGS_PER_MESSAGE,
        **runs,
        "rule_workers": workers,
        **format_cost(),
    }


def one_store(messages: int, store_kind: str) -> dict[str, object]:
    """The ceiling, one writer and two, into `store_kind`, on a broker of their own."""
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        folder = Path(tmp)
        broker = Mosquitto(folder, extra_conf="max_queued_messages 0\nmax_inflight_messages 100\n")
        broker.start()
        vm = VictoriaMetrics(folder / "vm") if store_kind == "victoria" else None
        started: list[Part] = []
        try:
            if vm is not None:
                (folder / "vm").mkdir()
                vm.start()
            store: object = (
                {"url": vm.url, "org": "bench", "bucket": "bench", "token_env": None} if vm else "var/telemetry.db"
            )

            def writer(name: str, run: int) -> Part:
                home = folder / name
                w = Part(home, site_file(home, broker.url, store, site_of(run)), name, "writer")
                started.append(w)
                return w

            top = ceiling(broker, messages, 1)
            one = writers_rate(broker, [writer("w1", 2)], messages, 2)
            two = writers_rate(broker, [writer("w2a", 3), writer("w2b", 3)], messages, 3)
            rss = {w.name: round(w.rss_mb(), 1) for w in started}
        finally:
            for w in started:
                if w.proc is not None and w.proc.poll() is None:
                    w.proc.kill()
                    w.proc.wait(10)
            if vm is not None:
                vm.stop()
            broker.stop()
    return {
        "mosquitto_sub_readings_per_s": round(top),
        "one_writer_readings_per_s": round(one),
        "two_writers_readings_per_s": round(two),
        "two_to_one_writer": round(two / one, 3) if one else None,
        "two_writers_to_mosquitto_sub": round(two / top, 3) if top else None,
        "writer_peak_rss_mb": rss,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=30_000, help="messages per run (10 readings each)")
    parser.add_argument("--store", choices=("victoria", "sqlite"), action="append", help="default: both, in turn")
    args = parser.parse_args()
    try:
        print(json.dumps(main(args.messages, args.store or ["victoria", "sqlite"])))
    except BenchFailed as exc:
        sys.exit(f"bench failed: {exc}")
