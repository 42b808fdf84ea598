"""MQTT ingest: readings per second from MQTT through decode, bus, rules and store, against the
same publishers' messages received by `mosquitto_sub` (the ceiling) and by a bare paho-mqtt loop
(the Python floor), at QoS 0 and at QoS 1, all on one broker of the benchmark's own, one after
the other. Every consumer runs `--rounds` times, the rounds interleaved, and its best round counts:
on a shared machine a single run of each measured mostly what else was running at the time.

Each run: the consumer subscribes with a kept session and leaves; eight `mosquitto_pub -l`
processes publish N messages of about 80 bytes at the run's QoS, which the broker queues for it;
the consumer comes back and drains them. The rate is messages (one reading each) over the time from
the first to the last one the consumer got, so the publishers' speed does not enter. Each run has
topics of its own, so no session queues another run's messages.

- QoS 0 (`readings_per_s`, `paho_per_s`, `mosquitto_sub_per_s`, `ratio_*`): nothing acknowledged.
- QoS 1 (`qos1_*`): every consumer acknowledges. mosquitto_sub and paho acknowledge each message as
  it is handed to them (paho's normal auto-ack); the pipeline is the gateway as the runtime wires
  it (gateway.service.Gateway: a kept session, manual_ack, `ack_after=writer.settled`), which
  acknowledges a message only once its reading is in the store or the spool. The broker lets at
  most `qos1_inflight_window` unacknowledged messages out to a client at once, so at QoS 1 an
  acknowledgement that waits slows the whole feed (`--inflight` tries another window).

The broker runs with the in-flight and queue limits of deploy/mosquitto.conf, read at run time
(`broker_limits`; mosquitto's default where the file sets none), and `queue_qos0_messages`, which
the QoS 0 runs need to queue their backlog. Our pipeline counts a reading once the telemetry store
(SQLite) has written it; a consumer that has not drained its backlog within DRAIN_LIMIT_S is
stopped there, and its rate is of what it had. `ratio_to_paho_floor` is the share of the bare
paho loop the pipeline is to keep. Prints one JSON object on a line of its own, and exits non-zero
when any run lost or did not finish messages (its rates are then not comparable).
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
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.support.ingest_feed import DEVICES, messages, pipeline_site, topic
from facility.aio import cancel_all
from facility.bus import LocalBus
from facility.site import load_site
from facility.store.live import LiveValues
from facility.store.ops import OpsStore
from facility_app.places import ops_url
from facility_app.stores import telemetry_writer
from gateway.deadletter import DeadLetters
from gateway.service import Gateway
from gateway.writer import TelemetryWriter
from rules.engine import Engine
from rules.ruleset import load_rules
from testsupport.servers import Mosquitto

ROOT = Path(__file__).resolve().parent.parent
DEPLOY_BROKER = ROOT / "deploy/mosquitto.conf"
PAHO_FLOOR = 0.75  # the share of the bare paho loop the pipeline keeps (the target)
IDLE_S = 5.0  # a consumer that got nothing for this long has received all it will
DRAIN_LIMIT_S = 60.0  # a consumer still draining after this long is stopped and measured as it is
# Mosquitto's in-flight and queue limits (mosquitto.conf(5)) and its defaults where a file sets none.
BROKER_LIMITS = {
    "max_inflight_messages": "20",
    "max_inflight_bytes": "0",
    "max_queued_messages": "1000",
    "max_queued_bytes": "0",
}


class BenchFailed(RuntimeError):
    """A step of the bench itself failed (a publisher, the broker); the message says which."""


def broker_limits(conf: Path) -> dict[str, str]:
    """The in-flight and queue limits a deployment's broker runs with: the file's, else mosquitto's
    defaults."""
    limits = dict(BROKER_LIMITS)
    for line in conf.read_text().splitlines():
        key, _, value = line.partition("#")[0].strip().partition(" ")
        if key in limits:
            limits[key] = value.strip()
    return limits


class Window:
    """First and last arrival and the count, for a consumer draining a backlog."""

    def __init__(self) -> None:
        self.count = 0
        self.first = self.last = 0.0
        self.started = time.perf_counter()  # when the consumer came back for its backlog

    def add(self, n: int = 1) -> None:
        now = time.perf_counter()
        if not self.count:
            self.first = now
        self.count += n
        self.last = now

    def idle(self) -> bool:
        """Nothing has come for IDLE_S after something did: the rest is not coming."""
        return self.count > 0 and time.perf_counter() - self.last > IDLE_S

    def over(self) -> bool:
        """Draining for longer than DRAIN_LIMIT_S (or nothing at all for that long)."""
        return time.perf_counter() - self.started > DRAIN_LIMIT_S

    @property
    def rate(self) -> float:
        return (self.count - 1) / (self.last - self.first) if self.count > 1 and self.last > self.first else 0.0


class Bench:
    """The broker, the publishers' feeds and the message count, shared by every run."""

    def __init__(self, broker: Mosquitto, folder: Path, total: int) -> None:
        self.broker, self.folder, self.total = broker, folder, total

    def broker_up(self) -> None:
        """Raise if the broker has gone: a consumer waiting for it would otherwise wait out its limit."""
        proc = self.broker.proc
        if proc is None or proc.poll() is not None:
            code = None if proc is None else proc.returncode
            log = self.broker.log.read_text()[-2000:] if self.broker.log.exists() else ""
            raise BenchFailed(f"the bench's broker is not running (exit status {code}); its log ends:\n{log}")

    def backlog(self, run: str, qos: int) -> None:
        """Publish every message of the run while its consumer is away; its kept session queues them."""
        self.broker_up()
        procs = []
        for d in range(DEVICES):
            feed = self.folder / f"feed-{d}.txt"
            if not feed.exists():
                feed.write_text(messages(self.total // DEVICES))
            with feed.open("rb") as lines:
                command = ["mosquitto_pub", "-p", str(self.broker.port), "-t", topic(run, d), "-l", "-q", str(qos)]
                procs.append(subprocess.Popen(command, stdin=lines))
        for p in procs:
            if p.wait(120):
                raise BenchFailed(f"mosquitto_pub for {run} exited with {p.returncode}")

    def keep_session(self, client_id: str, subscriptions: Sequence[tuple[str, int]]) -> None:
        """Open a kept session with these subscriptions, wait until the broker has them all, leave."""
        acked = threading.Event()
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        c.on_subscribe = lambda *_: acked.set()
        c.connect("127.0.0.1", self.broker.port)
        c.loop_start()
        c.subscribe(list(subscriptions))
        if not acked.wait(10):
            raise BenchFailed(f"the broker did not acknowledge the subscriptions of {client_id}")
        c.disconnect()
        c.loop_stop()

    def mosquitto_sub(self, qos: int, round_: int) -> Window:
        """mosquitto_sub prints each message's arrival time (%U); at QoS 1 it acknowledges each."""
        run = f"q{qos}-sub-{round_}"
        session = ["mosquitto_sub", "-p", str(self.broker.port), "-t", f"bench/{run}/#", "-q", str(qos), "-c"]
        session += ["-i", f"bench-{run}"]
        subprocess.run([*session, "-E"], check=True, timeout=30)  # subscribe, keep the session, leave
        self.backlog(run, qos)
        window = Window()
        out = subprocess.run(
            [*session, "-F", "%U", "-C", str(self.total), "-W", str(int(DRAIN_LIMIT_S))], capture_output=True, text=True
        )
        self.broker_up()
        stamps = [float(line) for line in out.stdout.split()]
        if stamps:
            window.count, window.first, window.last = len(stamps), stamps[0], stamps[-1]
        return window

    def paho(self, qos: int, round_: int) -> Window:
        """paho's own threaded loop; at QoS 1 it acknowledges each message after on_message."""
        run = f"q{qos}-paho-{round_}"
        window = Window()
        done = threading.Event()

        def on_message(*_: object) -> None:
            window.add()
            if window.count == self.total:
                done.set()

        self.keep_session(f"bench-{run}", [(f"bench/{run}/#", qos)])
        self.backlog(run, qos)
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{run}", clean_session=False)
        c.on_message = on_message
        window.started = time.perf_counter()
        c.connect("127.0.0.1", self.broker.port)
        c.loop_start()
        while not done.wait(0.5) and not window.idle() and not window.over():
            self.broker_up()
        c.disconnect()
        c.loop_stop()
        return window

    async def pipeline(self, qos: int, round_: int) -> tuple[Window, dict[str, int]]:
        """Our pipeline as facility_app/runtime.py wires it: bus, live values, the telemetry writer of
        the runtime (batches, spool with its alarm lane), the rule engine, and the gateway with
        its MQTT client, which acknowledges a batch once the writer says it is safe
        (`ack_after=writer.settled`); it stops in the runtime's order. Only the API, the alarm
        lifecycle and the notifier are left out. The gateway has run before (a first start makes
        its kept session), as after a restart."""
        run = f"q{qos}-pipe-{round_}"
        folder = self.folder / run
        site = load_site(pipeline_site(folder, run, qos, self.broker.url))
        async with AsyncExitStack() as stack:
            ops = OpsStore(ops_url(site, folder), site=site.site.id)
            await ops.start()
            stack.push_async_callback(ops.close)
            dead_letters = DeadLetters(ops)
            dead_letter_task = asyncio.create_task(dead_letters.run())
            stack.push_async_callback(cancel_all, [dead_letter_task])

            first = Gateway(site, LocalBus(), dead_letters)  # the run before: it leaves a kept session
            await first.start()
            await first.stop()
            await asyncio.to_thread(self.backlog, run, qos)

            received = Window()  # readings handed to the bus: one per message
            bus = LocalBus()
            bus.on_readings(lambda readings: received.add(len(readings)))
            bus.on_readings(LiveValues().update)
            writer, _ = telemetry_writer(site, folder, stack, dead_letters)  # the stack closes the store
            bus.on_readings(writer.add)
            changes: list[object] = []
            rules = load_rules(site)
            bus.on_readings(Engine(rules, changes.append).handle)
            judged = frozenset((d, p) for rule in rules for d in rule.devices for p in rule.reads)
            writer.alarm_points = lambda: judged  # as the runtime's judged_points, for rules that stay
            gateway = Gateway(site, bus, dead_letters, ack_after=writer.settled)

            stored = Window()
            writer_task = asyncio.create_task(writer.run())
            received.started = time.perf_counter()
            # Sampled from before the start: the broker sends the kept backlog before it answers the
            # subscription, so start() may return only once much of it is in.
            sampler = asyncio.create_task(self.sample_stored(writer, received, stored))
            await gateway.start()
            await sampler
            stored.first = received.first  # from the first message in to the last reading stored
            unacked = sum(f.value for f in gateway.figures() if f.name == "mqtt_unacked_batches")
            await gateway.stop_reading()  # the runtime's drain: reading, then the writer, then the acks
            await cancel_all([writer_task])
            await gateway.stop()
        return stored, {
            "rule_changes": len(changes),
            "received": received.count,
            "stored": stored.count,
            "dead": sum(dead_letters.counts.values()),
            "unacked": int(unacked),
        }

    async def sample_stored(self, writer: TelemetryWriter, received: Window, stored: Window) -> None:
        """The store's counter, sampled into `stored`, so that its window is of stored readings:
        until all are stored, the feed has gone idle with all it brought stored, or `received` has
        drained for longer than DRAIN_LIMIT_S."""
        while writer.written < self.total and not received.over():
            if received.idle() and writer.written == received.count:
                break
            await asyncio.sleep(0.005)
            self.broker_up()
            if writer.written > stored.count:
                stored.add(writer.written - stored.count)


def best(runs: list[Window]) -> Window:
    """The round in which a consumer went fastest: the one least disturbed by whatever else the
    machine was doing (the rounds are interleaved, so every consumer had the same chances)."""
    return max(runs, key=lambda w: w.rate)


def rates(
    qos: int, subs: list[Window], floors: list[Window], pipes: list[tuple[Window, dict[str, int]]]
) -> dict[str, object]:
    """One QoS level's figures, best round of each consumer; QoS 0 keeps the names it has always
    had, QoS 1 is prefixed. The counts are the smallest of any round: each must be the total."""
    p = "" if qos == 0 else f"qos{qos}_"
    sub, floor, ours = best(subs), best(floors), best([w for w, _ in pipes])
    return {
        f"{p}readings_per_s": round(ours.rate),
        f"{p}paho_per_s": round(floor.rate),
        f"{p}mosquitto_sub_per_s": round(sub.rate),
        f"{p}ratio_to_paho": round(ours.rate / floor.rate, 3) if floor.rate else None,
        f"{p}ratio_to_mosquitto_sub": round(ours.rate / sub.rate, 3) if sub.rate else None,
        f"{p}paho_ratio_to_mosquitto_sub": round(floor.rate / sub.rate, 3) if sub.rate else None,
        f"{p}mosquitto_sub_received": min(w.count for w in subs),
        f"{p}paho_received": min(w.count for w in floors),
        f"{p}received": min(e["received"] for _, e in pipes),
        f"{p}stored": min(e["stored"] for _, e in pipes),
        f"{p}rule_changes": min(e["rule_changes"] for _, e in pipes),
        f"{p}dead_letters": sum(e["dead"] for _, e in pipes),
        # Batches still waiting for the writer's word once every reading was stored: 0 if each
        # acknowledgement went out as soon as its readings were safe.
        f"{p}unacked_batches_after_drain": max(e["unacked"] for _, e in pipes),
    }


def main(total: int, rounds: int, inflight: int | None) -> dict[str, object]:
    if total % DEVICES:
        sys.exit(f"--messages: a multiple of {DEVICES} (one publisher per device, each the same share)")
    if shutil.which("mosquitto_pub") is None or shutil.which("mosquitto_sub") is None:
        sys.exit("needs mosquitto_pub and mosquitto_sub (apt-get install -y mosquitto-clients)")
    limits = broker_limits(DEPLOY_BROKER)
    if inflight is not None:  # to see what the window does; the figures of record use the deployed one
        limits["max_inflight_messages"] = str(inflight)
    figures: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        # Each consumer drains a backlog the broker keeps for its session, so what is measured is
        # the consumer, not the publishers.
        conf = "".join(f"{key} {value}\n" for key, value in limits.items()) + "queue_qos0_messages true\n"
        broker = Mosquitto(folder, conf)
        broker.start()
        try:
            bench = Bench(broker, folder, total)
            subs: dict[int, list[Window]] = {0: [], 1: []}
            floors: dict[int, list[Window]] = {0: [], 1: []}
            pipes: dict[int, list[tuple[Window, dict[str, int]]]] = {0: [], 1: []}
            for round_ in range(rounds):
                for qos in (0, 1):
                    subs[qos].append(bench.mosquitto_sub(qos, round_))
                    floors[qos].append(bench.paho(qos, round_))
                    pipes[qos].append(asyncio.run(bench.pipeline(qos, round_)))
            for qos in (0, 1):
                figures |= rates(qos, subs[qos], floors[qos], pipes[qos])
        finally:
            broker.stop()
    qos0, qos1 = figures["readings_per_s"], figures["qos1_readings_per_s"]
    assert isinstance(qos0, int) and isinstance(qos1, int)
    return {
        "benchmark": "ingest",
        "messages": total,
        "rounds": rounds,
        **figures,
        "ratio_to_paho_floor": PAHO_FLOOR,
        "qos1_to_qos0_readings": round(qos1 / qos0, 3) if qos0 else None,
        "qos1_inflight_window": int(limits["max_inflight_messages"]),
        "broker_limits": limits,
        "broker_limits_from": str(DEPLOY_BROKER.relative_to(ROOT)) + (" and --inflight" if inflight else ""),
        "drain_limit_s": DRAIN_LIMIT_S,
    }


COUNTS = ("mosquitto_sub_received", "paho_received", "stored")

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000, help="per run")
    parser.add_argument("--rounds", type=int, default=2, help="runs of every consumer, interleaved; the best counts")
    parser.add_argument("--inflight", type=int, help="QoS 1 window instead of deploy/mosquitto.conf's")
    args = parser.parse_args()
    try:
        result = main(args.messages, args.rounds, args.inflight)
    except BenchFailed as exc:
        sys.exit(f"bench/ingest.py failed: {exc}")
    print(json.dumps(result), flush=True)
    short = {f"{p}{k}": result[f"{p}{k}"] for p in ("", "qos1_") for k in COUNTS}
    if any(v != args.messages for v in short.values()):
        sys.exit(f"messages lost or not drained: {short} of {args.messages} published; the rates are not comparable")
