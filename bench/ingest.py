"""MQTT ingest: readings per second from MQTT through decode, bus, rules and store, against the
same publishers' messages received by `mosquitto_sub` (the ceiling) and by a bare paho-mqtt loop
(the Python floor), all on one broker of the benchmark's own, one after the other.

Each run: the consumer subscribes with a kept session and leaves; eight `mosquitto_pub -l`
processes publish N messages of about 80 bytes at QoS 0, which the broker queues for it; the
consumer comes back and drains them. The rate is messages (one reading each) over the time from the
first to the last one the consumer got, so the publishers' speed does not enter. Our pipeline
counts a reading once the telemetry store (SQLite) has written it. Prints one JSON object on a line
of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from facility.bus import Bus
from facility.mqtt import MqttClient
from facility.site import load_site
from facility.store.live import LiveValues
from facility.store.sqlite_telemetry import SqliteTelemetry
from gateway.health import Health
from gateway.mqtt import MqttIngest
from gateway.spool import Spool
from gateway.writer import TelemetryWriter
from rules.engine import Engine
from rules.ruleset import load_rules
from tests.servers import Mosquitto

DEVICES = 8
PROFILE = """type: flow_meter
timestamp: ts
points:
  value: {unit: m3/h, json: value}
"""
RULE = """rules:
  - id: high-flow
    title: {zh: "{device_name} 流量高", en: "{device_name}: high flow"}
    devices: {types: [flow_meter]}
    when: value > 990
    priority: low
"""


def messages(n: int, device: int) -> str:
    """n documents of about 80 bytes, one per line, for `mosquitto_pub -l`."""
    now_ms = int(time.time() * 1000)
    return "".join(
        f'{{"value":{(i * 7919) % 1000 + 0.125:.3f},"ts":{now_ms + i},"seq":{i},"unit":"m3/h","ok":true}}\n'
        for i in range(n)
    )


def publish(broker: Mosquitto, folder: Path, total: int) -> list[subprocess.Popen[bytes]]:
    procs = []
    for d in range(DEVICES):
        feed = folder / f"feed-{d}.txt"
        if not feed.exists():
            feed.write_text(messages(total // DEVICES, d))
        procs.append(
            subprocess.Popen(
                ["mosquitto_pub", "-p", str(broker.port), "-t", f"bench/dev-{d}/state", "-l", "-q", "0"],
                stdin=feed.open("rb"),
            )
        )
    return procs


IDLE_S = 5.0  # a consumer that got nothing for this long has received all it will


class Window:
    """First and last arrival and the count, for a consumer draining a backlog."""

    def __init__(self) -> None:
        self.count = 0
        self.first = self.last = 0.0

    def add(self, n: int = 1) -> None:
        now = time.perf_counter()
        if not self.count:
            self.first = now
        self.count += n
        self.last = now

    def idle(self) -> bool:
        """Nothing has come for IDLE_S after something did: the rest is not coming."""
        return self.count > 0 and time.perf_counter() - self.last > IDLE_S

    @property
    def rate(self) -> float:
        return (self.count - 1) / (self.last - self.first)


def backlog(broker: Mosquitto, folder: Path, total: int) -> None:
    """Publish every message while the consumer is away; its kept session queues them all."""
    for p in publish(broker, folder, total):
        p.wait(120)


def keep_session(broker: Mosquitto, client_id: str, topics: list[str]) -> None:
    """Open a kept session with these subscriptions, wait until the broker has them all, leave."""
    acked = threading.Event()
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    c.on_subscribe = lambda *_: acked.set()
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    c.subscribe([(t, 0) for t in topics])
    if not acked.wait(10):
        sys.exit(f"the broker did not acknowledge the subscriptions of {client_id}")
    c.disconnect()
    c.loop_stop()


def run_mosquitto_sub(broker: Mosquitto, folder: Path, total: int) -> Window:
    """mosquitto_sub prints each message's arrival time (%U)."""
    session = ["mosquitto_sub", "-p", str(broker.port), "-t", "bench/#", "-c", "-i", "bench-mosquitto-sub"]
    subprocess.run([*session, "-E"], check=True, timeout=30)  # subscribe, keep the session, leave
    backlog(broker, folder, total)
    out = subprocess.run([*session, "-F", "%U", "-C", str(total), "-W", "120"], capture_output=True, text=True)
    stamps = [float(line) for line in out.stdout.split()]
    window = Window()
    window.count, window.first, window.last = len(stamps), stamps[0], stamps[-1]
    return window


def run_paho(broker: Mosquitto, folder: Path, total: int) -> Window:
    window = Window()
    done, subscribed = threading.Event(), threading.Event()

    def on_message(*_: object) -> None:
        window.add()
        if window.count == total:
            done.set()

    def client() -> paho.Client:
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-paho", clean_session=False)
        c.on_message = on_message
        c.on_subscribe = lambda *_: subscribed.set()
        c.connect("127.0.0.1", broker.port)
        return c

    first = client()
    first.subscribe("bench/#", 0)
    first.loop_start()
    subscribed.wait(10)
    first.disconnect()
    first.loop_stop()
    backlog(broker, folder, total)
    second = client()
    second.loop_start()
    while not done.wait(0.5) and not window.idle():
        pass
    second.disconnect()
    second.loop_stop()
    return window


async def run_pipeline(broker: Mosquitto, folder: Path, total: int) -> tuple[Window, dict[str, int]]:
    (folder / "profiles").mkdir(exist_ok=True)
    (folder / "profiles/flow_meter.yaml").write_text(PROFILE)
    (folder / "rules.yaml").write_text(RULE)
    devices = "".join(
        f"  - {{id: flow-{d}, profile: flow_meter, mqtt: {{topic: bench/dev-{d}/state, qos: 0, interval: 1s}}}}\n"
        for d in range(DEVICES)
    )
    (folder / "site.yaml").write_text(
        f"site: {{id: bench}}\nbroker: {{url: '{broker.url}'}}\nprofiles: [profiles/]\n"
        f"use_rule_library: false\nrules: [rules.yaml]\ndevices:\n{devices}"
    )
    site = load_site(folder / "site.yaml")
    bus = Bus()
    bus.on_readings(LiveValues().update)
    bus.on_readings(Health(site, bus.publish_readings).seen)
    changes: list[object] = []
    bus.on_readings(Engine(load_rules(site), changes.append).handle)
    store = SqliteTelemetry(folder / "telemetry.db")
    writer = TelemetryWriter(store, Spool(folder / "spool"))
    bus.on_readings(writer.add)
    ingest = MqttIngest(site, bus.publish_readings, lambda *_: None, lambda *a: print("dead letter", a[:3]))
    received = Window()

    def handle(batch: list[tuple[str, bytes | bytearray]]) -> None:
        received.add(len(batch))
        ingest.handle(batch)

    def client() -> MqttClient:  # the gateway's own client: a kept session, as in production
        subs = [(topic, 0) for topic, _ in ingest.subscriptions]
        return MqttClient("127.0.0.1", broker.port, client_id="bench-gateway", subscriptions=subs, on_messages=handle)

    await asyncio.to_thread(keep_session, broker, "bench-gateway", [t for t, _ in ingest.subscriptions])
    await asyncio.to_thread(backlog, broker, folder, total)
    consumer = client()
    writer_task = asyncio.create_task(writer.run())
    await consumer.start()
    stored = Window()
    while writer.written < total and not (received.idle() and writer.written == received.count):
        await asyncio.sleep(0.005)  # sampling the store's counter: the window is of stored readings
        if writer.written > stored.count:
            stored.add(writer.written - stored.count)
    stored.first = received.first  # from the first message in to the last reading stored
    writer_task.cancel()
    await asyncio.gather(writer_task, return_exceptions=True)
    await consumer.stop()
    store.close()
    return stored, {"rule_changes": len(changes), "received": received.count, "stored": writer.written}


def main(total: int) -> dict[str, object]:
    if shutil.which("mosquitto_pub") is None or shutil.which("mosquitto_sub") is None:
        sys.exit("needs mosquitto_pub and mosquitto_sub (apt-get install -y mosquitto-clients)")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        # Each consumer drains a backlog the broker keeps for its session, so what is measured is
        # the consumer, not the publishers.
        broker = Mosquitto(folder, "max_queued_messages 0\nqueue_qos0_messages true\n")
        broker.start()
        try:
            ceiling = run_mosquitto_sub(broker, folder, total)
            floor = run_paho(broker, folder, total)
            ours, extra = asyncio.run(run_pipeline(broker, folder, total))
        finally:
            broker.stop()
    return {
        "benchmark": "ingest",
        "messages": total,
        "readings_per_s": round(ours.rate),
        "paho_per_s": round(floor.rate),
        "mosquitto_sub_per_s": round(ceiling.rate),
        "ratio_to_paho": round(ours.rate / floor.rate, 3),
        "ratio_to_mosquitto_sub": round(ours.rate / ceiling.rate, 3),
        "mosquitto_sub_received": ceiling.count,
        "paho_received": floor.count,
        **extra,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    args = parser.parse_args()
    result = main(args.messages)
    print(json.dumps(result), flush=True)
    short = {k: v for k, v in result.items() if k in ("mosquitto_sub_received", "paho_received", "stored")}
    if any(v != args.messages for v in short.values()):
        sys.exit(f"messages lost: {short} of {args.messages} published; the rates above are not comparable")
