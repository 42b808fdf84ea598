"""The centre's writers: readings per second from the estates' uplink topics
(`facility/v1/readings/<site>/<device>`, MessagePack at QoS 1) into the central store, with one
and with two `facility run --parts writer` processes sharing the subscription, against
`mosquitto_sub` draining the same backlog in the same run (the ceiling); and what the message
format costs.

Each run: the consumers subscribe with kept sessions and stop (SIGTERM: the broker keeps their
sessions); N messages of READINGS_PER_MESSAGE readings each are published at QoS 1 and queued for
them (split between the members of the shared group); the consumers start again and drain. A
writer's rate is the readings its store took (`facility_readings_stored_total` on its /metrics,
polled) over the time from the first poll that saw any to the one that saw all; every answer is
checked, and a run that does not store every reading within DRAIN_LIMIT_S fails the bench.

The store is VictoriaMetrics (InfluxDB's write API, as the centre's store is written), and then
a SQLite file per writer (the writers share nothing but the broker): the first says what one
store on the same cores allows, the second what the writers themselves scale to. On a
2-core machine the broker, the store and the writers share the cores: the ratio says what a
second writer buys here, not on a centre's servers. Rule workers are not measured: their sites
are not yet partitioned among workers (docs/scale-out.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import msgspec
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from facility.model import Quality, Reading
from facility.netutil import free_port
from facility.readings_wire import decode, encode, readings_filter, readings_topic
from testsupport.influx_servers import VictoriaMetrics
from testsupport.servers import Mosquitto, wait_listening

DEVICES = 100
READINGS_PER_MESSAGE = 10  # a pump's points in one poll
TOKEN = "scale-bench-token-5b0e9d2c7a41f836"
DRAIN_LIMIT_S = 180.0
POLL_S = 0.2


class BenchFailed(RuntimeError):
    pass


def site_of(run: int) -> str:
    """Each run's estate: its topics and its writers' shared group are its own, so that the kept
    sessions of one run (in the group, and queued for) take nothing of the next run's backlog."""
    return f"scale{run}"


def site_file(folder: Path, broker: str, store: object, site: str) -> Path:
    """A site of DEVICES numbered devices with READINGS_PER_MESSAGE points each, its store `store`."""
    (folder / "profiles").mkdir(parents=True)
    points = "".join(f"  p{k}: {{json: p{k}}}\n" for k in range(READINGS_PER_MESSAGE))
    (folder / "profiles" / "bench.yaml").write_text(f"type: bench\npoints:\n{points}")
    stores = {"telemetry": store, "spool": "var/spool", "ops": "sqlite+aiosqlite:///var/ops.db"}
    lines = [
        f"site: {{id: {site}, name: Scale bench, timezone: UTC}}",
        f'broker: {{url: "{broker}"}}',
        f"stores: {json.dumps(stores)}",
        "profiles: [profiles/]",
        "use_rule_library: false",
        "devices:",
        *(f"  - {{id: d{i}, profile: bench, mqtt: {{topic: bench/d{i}, interval: 600s}}}}" for i in range(DEVICES)),
    ]
    (folder / "site.yaml").write_text("\n".join(lines) + "\n")
    return folder / "site.yaml"


class Writer:
    """`facility run --parts writer` on a site folder of its own, its output in a file."""

    def __init__(self, folder: Path, site: Path, name: str) -> None:
        self.folder, self.site, self.name = folder, site, name
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "facility_app", "run", "-c", str(self.site), "--port", str(self.port)]
        command += ["--parts", "writer", "--instance", self.name]
        env = {**os.environ, "FACILITY_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1"}
        with (self.folder / f"{self.name}.log").open("ab") as log:
            self.proc = subprocess.Popen(command, cwd=self.folder, env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_listening(self.port, timeout=60, proc=self.proc)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            if self.proc.wait(30) != 0:
                raise BenchFailed(f"writer {self.name} exited with {self.proc.returncode}")

    def stored(self) -> int:
        """Readings its store took, from its /metrics (a checked answer)."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/metrics")
        request.add_header("Authorization", f"Bearer {TOKEN}")
        with urllib.request.urlopen(request, timeout=10) as response:
            if response.status != 200:
                raise BenchFailed(f"writer {self.name}'s /metrics answered {response.status}")
            body = response.read().decode()
        for line in body.splitlines():
            if line.startswith("facility_readings_stored_total "):
                return int(float(line.split()[1]))
        raise BenchFailed(f"writer {self.name}'s /metrics has no facility_readings_stored_total")

    def peak_rss_mb(self) -> float:
        assert self.proc is not None
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(next(x for x in status.splitlines() if x.startswith("VmHWM:")).split()[1]) / 1024


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


def writers_rate(broker: Mosquitto, writers: list[Writer], messages: int, run: int) -> float:
    """Readings per second of the writers draining a backlog together."""
    for w in writers:
        w.start()  # subscribes with its kept session ...
    for w in writers:
        w.stop()  # ... which the broker keeps, queueing the backlog for it
    backlog(broker, messages, run)
    for w in writers:
        w.start()
    total = messages * READINGS_PER_MESSAGE
    first: tuple[float, int] | None = None
    deadline = time.monotonic() + DRAIN_LIMIT_S
    while True:
        stored = sum(w.stored() for w in writers)
        now = time.monotonic()
        if stored and first is None:
            first = (now, stored)
        if stored >= total:
            break
        if now > deadline:
            raise BenchFailed(f"{len(writers)} writers stored {stored} of {total} within {DRAIN_LIMIT_S:g} s")
        time.sleep(POLL_S)
    assert first is not None
    return (stored - first[1]) / (now - first[0]) if now > first[0] else 0.0


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
    return {
        "bench": "scale",
        "messages": messages,
        "readings_per_message": READINGS_PER_MESSAGE,
        **runs,
        **format_cost(),
    }


def one_store(messages: int, store_kind: str) -> dict[str, object]:
    """The ceiling, one writer and two, into `store_kind`, on a broker of their own."""
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        folder = Path(tmp)
        broker = Mosquitto(folder, extra_conf="max_queued_messages 0\nmax_inflight_messages 100\n")
        broker.start()
        vm = VictoriaMetrics(folder / "vm") if store_kind == "victoria" else None
        started: list[Writer] = []
        try:
            if vm is not None:
                (folder / "vm").mkdir()
                vm.start()
            store: object = (
                {"url": vm.url, "org": "bench", "bucket": "bench", "token_env": None} if vm else "var/telemetry.db"
            )

            def writer(name: str, run: int) -> Writer:
                home = folder / name
                w = Writer(home, site_file(home, broker.url, store, site_of(run)), name)
                started.append(w)
                return w

            top = ceiling(broker, messages, 1)
            one = writers_rate(broker, [writer("w1", 2)], messages, 2)
            two = writers_rate(broker, [writer("w2a", 3), writer("w2b", 3)], messages, 3)
            rss = {w.name: round(w.peak_rss_mb(), 1) for w in started}
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
