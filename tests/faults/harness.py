"""What the fault tests share: a broker from the deploy configuration, a site of numbered devices,
`facility run` as a child process, a publisher that knows what the broker acknowledged, a TCP
proxy that can cut the ops store away, and the count of what reached the telemetry store.

Every message is numbered (`{"seq": n}`), so after a fault the test can say exactly which
acknowledged messages never arrived (lost) and which arrived more than once (duplicates). Every
process is started here, on free ports, and stopped by its pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from sqlalchemy.engine import make_url

from facility.netutil import free_port
from testsupport.influx_servers import Influx1, VictoriaMetrics
from testsupport.pg import alarm_counts
from testsupport.proxy import TcpProxy
from testsupport.servers import require_binary, wait_listening

REPO = Path(__file__).resolve().parents[2]
DEPLOY_CONF = REPO / "deploy" / "mosquitto.conf"
SERVICE_USER = "facility"  # the user deploy/site.yaml connects as
DEVICE_USER = "device"  # the publisher: a device of the estate
TOKEN = "faults-admin-token-0123456789-abcdefgh"
RULE_ID = "fault-test-alarm"
INFLUX_DB = "faults"
T = TypeVar("T")


# --- waiting --------------------------------------------------------------------------------


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll `check` until it returns something truthy; TimeoutError naming `what` otherwise.

    The machine may be busy: every wait in these tests is a condition with a deadline, never a
    fixed sleep that hopes the condition holds by then."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g}s (last: {result!r})")
        time.sleep(interval)


# --- the broker -----------------------------------------------------------------------------

# Settings that belong to one listener: those after a second `listener` line go with it.
_LISTENER_SCOPED = {
    "protocol",
    "cafile",
    "capath",
    "certfile",
    "keyfile",
    "require_certificate",
    "use_identity_as_username",
    "use_subject_as_username",
    "tls_version",
    "ciphers",
    "http_dir",
    "socket_domain",
    "bind_interface",
    "mount_point",
    "max_connections",
}
# TLS files of the deployment: the test's listener is plain TCP on loopback, so they are left out.
_TLS_FILES = {"cafile", "capath", "certfile", "keyfile", "crlfile", "dhparamfile"}


@dataclass(frozen=True)
class TlsListener:
    """The deployment's TLS listener as a test runs it: on `port` of 127.0.0.1, with the test's
    own files in place of those the deployment names (`certfile`, `keyfile`, ...)."""

    port: int
    files: Mapping[str, Path]


# The fault tests' one publisher stands in for every device of their sites (`faults/<device>/...`),
# and their broker starts before a site is written: its ACL grants by that prefix, in the shape
# `facility broker acl` gives a site (tests/test_broker_acl.py tests a rendered one on this configuration).
FAULTS_ACL = f"""user {SERVICE_USER}
topic read faults/#
topic readwrite facility/v1/#

user {DEVICE_USER}
topic write faults/#
"""


def compose_password_files(folder: Path, service: tuple[str, str], devices: Mapping[str, str]) -> tuple[Path, Path]:
    """The broker's users as docker-compose.yml makes them: the devices' plain `id:password` file
    (the secret the simulators read too) and the broker's password file, the service's line and
    the devices', hashed in place (no password on a command line). Returns (devices', broker's)."""
    device_passwords = folder / "mqtt-device-passwords"
    device_passwords.write_text("".join(f"{device}:{password}\n" for device, password in devices.items()))
    passwd = folder / "passwd"
    passwd.write_text(f"{service[0]}:{service[1]}\n" + device_passwords.read_text())
    subprocess.run([require_binary("mosquitto_passwd", "mosquitto"), "-U", str(passwd)], check=True)
    return device_passwords, passwd


def broker_conf(
    deploy: str, port: int, passwd: Path, data: Path, user: str, acl: Path, tls: TlsListener | None = None
) -> str:
    """deploy/mosquitto.conf as a test runs it: every setting kept (persistence, autosave, queue
    limits, in-flight window, authentication, ACL ...) except where it listens and where its files
    are. Derived from the file at run time, so that a change to the deployment is tested as made.

    - the first plain listener moves to a free port on 127.0.0.1; with `tls`, the first TLS
      listener (one that names a `certfile`) moves to `tls.port` with the test's files; further
      listeners (websockets, TLS without `tls`) are left out with their own settings;
    - `password_file`, `persistence_location` and `acl_file` name the test's files (`acl`: the
      deployment's ACL is rendered for the deployment's site, and a test has a site of its own);
    - TLS files outside a kept TLS listener are left out (plain TCP on loopback);
    - `user` becomes the user running the tests: run as root, Mosquitto would otherwise drop to
      the `mosquitto` user, who cannot write the test's persistence folder.
    """
    lines = deploy.splitlines()
    keys = ["" if not line.strip() or line.strip().startswith("#") else line.split()[0] for line in lines]
    # A listener's settings run to the next `listener` line; with a certfile among them it is TLS.
    starts = [i for i, key in enumerate(keys) if key == "listener"]
    kind_of: dict[int, str] = {}  # line of each `listener`: "plain", "tls" (kept) or "left out"
    for start, end in zip(starts, [*starts[1:], len(lines)], strict=True):
        is_tls = "certfile" in keys[start:end]
        wanted = ("tls" if tls is not None else "left out") if is_tls else "plain"
        kind_of[start] = wanted if wanted not in kind_of.values() else "left out"
    if tls is not None and "tls" not in kind_of.values():
        raise ValueError("deploy/mosquitto.conf has no TLS listener (a `listener` with a `certfile`) to test")
    out = [] if "plain" in kind_of.values() else [f"listener {port} 127.0.0.1"]
    kind = "global"
    for i, (raw, key) in enumerate(zip(lines, keys, strict=True)):
        if not key:
            out.append(raw)
            continue
        if key == "listener":
            kind = kind_of[i]
            if kind != "left out":
                out.append(f"listener {tls.port if tls is not None and kind == 'tls' else port} 127.0.0.1")
            continue
        if kind == "left out" and key in _LISTENER_SCOPED:
            continue
        if key in _TLS_FILES:
            if tls is not None and kind == "tls":
                if key not in tls.files:
                    raise ValueError(f"deploy/mosquitto.conf's TLS listener names a {key}; the test gives none")
                out.append(f"{key} {tls.files[key]}")
            continue
        if key == "password_file":
            out.append(f"password_file {passwd}")
        elif key == "persistence_location":
            out.append(f"persistence_location {data}/")
        elif key == "acl_file":
            out.append(f"acl_file {acl}")
        elif key not in ("user", "pid_file"):
            out.append(raw)
    out.append(f"user {user}")
    return "\n".join(out) + "\n"


class Broker:
    """Mosquitto with the deploy configuration, on a free port, with its password file and its
    persistence under the test's folder. `kill` and `start` again keep port and persistence: a
    broker crash and restart as an operator sees it."""

    def __init__(self, workdir: Path) -> None:
        self.binary = require_binary("mosquitto", "mosquitto")
        passwd_tool = require_binary("mosquitto_passwd", "mosquitto")
        self.folder = workdir / "broker"
        self.data = self.folder / "data"
        self.data.mkdir(parents=True)
        self.port = free_port()
        self.passwords = {SERVICE_USER: uuid.uuid4().hex, DEVICE_USER: uuid.uuid4().hex}
        passwd = self.folder / "passwd"
        for i, (user, password) in enumerate(self.passwords.items()):
            flags = ["-c"] if i == 0 else []
            subprocess.run([passwd_tool, *flags, "-b", str(passwd), user, password], check=True, capture_output=True)
        acl = self.folder / "acl"
        acl.write_text(FAULTS_ACL)
        self.conf = self.folder / "mosquitto.conf"
        self.conf.write_text(
            broker_conf(DEPLOY_CONF.read_text(), self.port, passwd, self.data, pwd.getpwuid(os.getuid()).pw_name, acl)
        )
        self.log = self.folder / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        with self.log.open("ab") as log:  # a file: a pipe nobody reads would stall the broker
            self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=log, stderr=log)
        wait_listening(self.port, timeout=timeout, proc=self.proc)

    def log_text(self) -> str:
        """What the broker logged (to stdout, block-buffered: complete only once it has stopped)."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill(self) -> None:
        """SIGKILL: what is only in the broker's memory is gone, as in a crash or an OOM kill."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


# --- the site -------------------------------------------------------------------------------

PROFILE = """# A device that numbers its messages: the fault tests count them.
type: numbered
points:
  seq: {json: seq}
  alarm: {json: alarm}
"""
PROFILE_TS = PROFILE.replace("points:", "timestamp: ts  # ms since the epoch, set by the device\npoints:")
RULES = f"""rules:
  - id: {RULE_ID}
    title: {{zh: "{{device_name}} 测试报警", en: "{{device_name}}: test alarm"}}
    devices: {{types: [numbered]}}
    when: alarm > 0
    priority: emergency
"""


def wide_points(width: int) -> list[str]:
    """The extra points of a wide device: a message carrying them is `width` more readings."""
    return [f"w{k}" for k in range(1, width + 1)]


@dataclass(frozen=True)
class FaultSite:
    """A site file of numbered MQTT devices, and where its stores are."""

    path: Path
    folder: Path
    site_id: str
    devices: list[str]
    topics: list[str]
    timestamps: bool  # readings carry the device's own time (`ts`), or take the receive time
    width: int  # extra points per message (w1...), each a reading
    telemetry_db: Path | None  # the SQLite telemetry file, when that is the store
    spool: Path


def write_fault_site(
    folder: Path,
    broker: Broker,
    *,
    devices: int = 4,
    device_prefix: str = "dev",
    timestamps: bool = True,
    width: int = 0,
    influx: dict[str, Any] | None = None,
    ops: str | None = None,
    spool: Path | None = None,
    spool_limit_mb: int | None = None,
    site_id: str | None = None,
    uplink: str | None = None,
) -> FaultSite:
    """N devices (`<device_prefix>-<k>`) of the `numbered` profile (points `seq` and `alarm`, with
    `ts` the device's time when `timestamps`, and `width` more: `w1`...), the one rule `alarm > 0`
    (emergency), and the stores: SQLite telemetry unless `influx` ({url, bucket, write_api, ...}),
    ops SQLite unless `ops` (a SQLAlchemy URL). `site_id` gives two processes of one estate the same
    site (a random one otherwise); `uplink` is the broker URL its readings go up to, when its
    gateway runs alone."""
    (folder / "profiles").mkdir(parents=True, exist_ok=True)
    profile = PROFILE_TS if timestamps else PROFILE
    profile += "".join(f"  {name}: {{json: {name}}}\n" for name in wide_points(width))
    (folder / "profiles" / "numbered.yaml").write_text(profile)
    (folder / "rules").mkdir(exist_ok=True)
    (folder / "rules" / "faults.yaml").write_text(RULES)
    spool = spool or folder / "var" / "spool"
    stores: dict[str, Any] = {
        "telemetry": influx if influx is not None else "var/telemetry.db",
        "spool": str(spool),
        "ops": ops or "sqlite+aiosqlite:///var/ops.db",
    }
    if spool_limit_mb is not None:
        stores["spool_limit_mb"] = spool_limit_mb
    ids = [f"{device_prefix}-{i + 1}" for i in range(devices)]
    topics = [f"faults/{d}/data" for d in ids]
    site_id = site_id or f"faults-{uuid.uuid4().hex[:8]}"
    login = f"username: {SERVICE_USER}, password_env: FACILITY_MQTT_PASSWORD"
    lines = [
        f"site: {{id: {site_id}, name: Fault tests, timezone: UTC}}",
        f'broker: {{url: "{broker.url}", {login}}}',
        *([f'uplink: {{url: "{uplink}", {login}}}'] if uplink else []),
        f"stores: {json.dumps(stores)}",  # JSON is YAML
        "profiles: [profiles/]",
        "rules: [rules/]",
        "use_rule_library: false",
        "devices:",
    ]
    for device, topic in zip(ids, topics, strict=True):
        # A long interval: no stale markers from device health in the middle of a count.
        lines.append(f"  - {{id: {device}, profile: numbered, mqtt: {{topic: {topic}, interval: 60s, qos: 1}}}}")
    path = folder / "site.yaml"
    path.write_text("\n".join(lines) + "\n")
    telemetry_db = folder / "var" / "telemetry.db" if influx is None else None
    return FaultSite(path, folder, site_id, ids, topics, timestamps, width, telemetry_db, spool)


# --- the service ----------------------------------------------------------------------------


class Service:
    """`python -m facility_app run -c site.yaml --port P` as a child: the admin token in
    FACILITY_TOKEN (never on the command line, where `ps` shows it), the broker password in the
    site's password_env, output appended to one log file across restarts."""

    def __init__(self, site: FaultSite, broker: Broker, name: str = "service", parts: str | None = None) -> None:
        self.site = site
        self.parts = ["--parts", parts, "--instance", name] if parts else []
        self.port = free_port()
        self.log = site.folder / f"{name}.log"
        self.env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "FACILITY_TOKEN": TOKEN,
            "FACILITY_MQTT_PASSWORD": broker.passwords[SERVICE_USER],
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        assert not self.running, "already running"
        self.starts += 1
        with self.log.open("ab") as log:
            log.write(f"\n===== start {self.starts} =====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "facility_app",
                    "run",
                    "-c",
                    str(self.site.path),
                    "--port",
                    str(self.port),
                    *self.parts,
                ],
                cwd=self.site.folder,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until /healthz answers: the API listens last, after the gateway has subscribed."""

        def answers() -> bool:
            if not self.running:
                code = self.proc.returncode if self.proc is not None else None
                raise RuntimeError(f"the service exited with {code} before it was ready:\n{self.log_tail()}")
            try:
                return self.get("/healthz", token=False)[0] == 200
            except OSError:
                return False

        wait_until(answers, timeout, "the service answering /healthz", interval=0.1)

    def start_ready(self, timeout: float = 60.0) -> None:
        self.start()
        self.wait_ready(timeout)

    def term(self, timeout: float = 40.0) -> int | None:
        """SIGTERM, as a deploy stops it; its exit code, or None if it was still running after
        `timeout` (it is then killed, and the caller says that this was a failure)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            return None

    def kill(self) -> None:
        """SIGKILL: a crash, an OOM kill, a power cut of the gateway."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        """Teardown: whatever state it is in, it is gone afterwards."""
        if self.running:
            self.term(timeout=30)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def rss_kb(self) -> int:
        """Resident memory of the child, from /proc (0 once it has gone)."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return 0
        line = next((x for x in status.splitlines() if x.startswith("VmRSS:")), "VmRSS: 0 kB")
        return int(line.split()[1])

    def connections_to(self, port: int) -> int:
        """TCP sockets the child holds open to 127.0.0.1:`port` (from /proc: its fds and the
        kernel's socket tables), in any state: a connection the peer closed counts until the child
        has read it to the end and closed it too."""
        inodes = set()
        for fd in Path(f"/proc/{self.pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        count = 0
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[9] in inodes and int(fields[2].rsplit(":", 1)[1], 16) == port:
                    count += 1
        return count

    def get(self, path: str, token: bool = True, timeout: float = 5.0) -> tuple[int, bytes]:
        request = urllib.request.Request(self.url + path)
        if token:
            request.add_header("Authorization", f"Bearer {TOKEN}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def part(self, kind: str) -> dict[str, Any] | None:
        """The first part of `kind` in /readyz ({name, kind, state, last_success_age_s, detail});
        None when /readyz does not answer (200, or 503 when everything is down) or lacks it."""
        try:
            status, body = self.get("/readyz", token=False)
        except OSError:
            return None
        if status not in (200, 503):
            return None
        parts = json.loads(body).get("parts", [])
        return next((p for p in parts if p.get("kind") == kind), None)

    def states_while(self, kind: str, done: Callable[[set[str]], bool], timeout: float = 60.0) -> set[str]:
        """The states /readyz gave the part of `kind` (`absent` when it gave none) while waiting
        for `done(states so far)`: how the service described itself during a fault."""
        seen: set[str] = set()

        def check() -> bool:
            part = self.part(kind)
            seen.add("absent" if part is None else str(part["state"]))
            return done(seen)

        wait_until(check, timeout, f"/readyz watched for {kind}", interval=0.2)
        return seen

    def metric(self, name: str) -> float | None:
        """The sum over labels of one Prometheus series from /metrics; None when /metrics does
        not answer 200 or does not have it."""
        status, body = self.get("/metrics")
        if status != 200:
            return None
        values = [
            float(line.rsplit(" ", 1)[1])
            for line in body.decode().splitlines()
            if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " ")
        ]
        return sum(values) if values else None


# --- the publisher --------------------------------------------------------------------------


class Publisher:
    """Numbered messages `{"seq": n, "ts": t0 + n}` at QoS 1, round-robin over the site's device
    topics, from paho's own network thread and a pacing thread: the test process never waits on
    it. It keeps its session (fixed client id, clean_session False) and paho keeps every message
    the broker has not acknowledged, sending it again after a reconnect, as a device with a
    buffer would. `acked` is what the broker acknowledged (PUBACK): what the service owes.

    `ts` is in ms and one apart per message, so that no two messages of a device share a time:
    InfluxDB and the SQLite store keep one point per series and time."""

    def __init__(self, broker: Broker, site: FaultSite, client_id: str = "faults-publisher") -> None:
        self.site = site
        self._wide = wide_points(site.width)
        self.t0_ms = int(time.time() * 1000)
        self._lock = threading.Lock()  # _pending, _early, _acked; never held while paho is called
        self._publish_lock = threading.Lock()  # one publish (and its registration) at a time
        self._pending: dict[int, int] = {}  # mid -> seq, sent and not yet acknowledged
        self._early: set[int] = set()  # mids acknowledged before their publish call returned
        self._acked: set[int] = set()
        self.published: list[int] = []
        self._next = 0
        self._connected = threading.Event()
        self._burst: threading.Thread | None = None
        self._stop = threading.Event()
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        c.username_pw_set(DEVICE_USER, broker.passwords[DEVICE_USER])
        c.max_inflight_messages_set(100)
        c.max_queued_messages_set(0)  # no limit: nothing is refused while the broker is away
        c.reconnect_delay_set(1, 2)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        self._client = c
        self._broker = broker

    def connect(self, timeout: float = 15.0) -> None:
        self._client.connect(self._broker.url.rsplit(":", 1)[0].removeprefix("mqtt://"), self._broker.port)
        self._client.loop_start()
        if not self._connected.wait(timeout):
            raise TimeoutError("the publisher did not connect to the broker")

    def close(self) -> None:
        self.stop()
        self._client.disconnect()
        self._client.loop_stop()

    # paho callbacks, on its network thread (holding paho's own locks: take only self._lock)

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if not reason.is_failure:
            self._connected.set()

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, _r: Any, _p: Any) -> None:
        self._connected.clear()

    def _on_publish(self, _c: Any, _u: Any, mid: int, _r: Any, _p: Any) -> None:
        with self._lock:
            seq = self._pending.pop(mid, None)
            if seq is None:
                self._early.add(mid)
            else:
                self._acked.add(seq)

    # publishing

    def payload(self, seq: int, extra: dict[str, Any] | None = None) -> bytes:
        doc: dict[str, Any] = {"seq": seq}
        if self.site.timestamps:
            doc["ts"] = self.t0_ms + seq
        for k, name in enumerate(self._wide):
            doc[name] = seq + k
        if extra:
            doc.update(extra)
        return json.dumps(doc).encode()

    def seq_of_ts(self, ts_ms: int) -> int:
        """The number of the message that carried this device time."""
        return ts_ms - self.t0_ms

    def publish(self, extra: dict[str, Any] | None = None, device: int | None = None) -> int:
        """One message (on the device seq % N, or on `device`); returns its number."""
        with self._publish_lock:
            seq = self._next
            self._next += 1
            topics = self.site.topics
            topic = topics[seq % len(topics) if device is None else device]
            info = self._client.publish(topic, self.payload(seq, extra), qos=1)
            if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                raise RuntimeError(f"paho refused message {seq}: {paho.error_string(info.rc)}")
            self.published.append(seq)
            with self._lock:
                if info.mid in self._early:
                    self._early.discard(info.mid)
                    self._acked.add(seq)
                else:
                    self._pending[info.mid] = seq
        return seq

    def burst(
        self,
        count: int | None,
        rate: float,
        extra: Callable[[int], dict[str, Any] | None] | None = None,
        device: int | None = None,
    ) -> None:
        """Start publishing `count` messages (None: until `stop`) at `rate` a second in a thread
        of its own; `extra(i)` adds fields to the i-th message of the burst."""
        assert self._burst is None or not self._burst.is_alive(), "a burst is running"
        self._stop.clear()

        def run() -> None:
            start = time.monotonic()
            i = 0
            while (count is None or i < count) and not self._stop.is_set():
                due = int((time.monotonic() - start) * rate) + 1
                if count is not None:
                    due = min(due, count)
                while i < due:
                    self.publish(extra(i) if extra else None, device)
                    i += 1
                time.sleep(0.002)  # pacing: the next messages are not due yet

        self._burst = threading.Thread(target=run, name="publisher burst", daemon=True)
        self._burst.start()

    def stop(self) -> None:
        self._stop.set()
        self.join()

    def join(self, timeout: float = 120.0) -> None:
        if self._burst is not None:
            self._burst.join(timeout)
            assert not self._burst.is_alive(), "the burst did not end"

    @property
    def burst_running(self) -> bool:
        return self._burst is not None and self._burst.is_alive()

    @property
    def count(self) -> int:
        """How many messages have been published so far."""
        return self._next

    def wait_count(self, n: int, timeout: float = 60.0) -> None:
        """Until `n` messages in all have been published."""
        wait_until(lambda: self._next >= n, timeout, f"{n} messages published")

    def wait_more(self, more: int, timeout: float = 60.0) -> None:
        """Until `more` further messages have been published: a fault lasts while the load goes on,
        so its length is counted in messages rather than slept."""
        self.wait_count(self._next + more, timeout)

    @property
    def acked(self) -> set[int]:
        with self._lock:
            return set(self._acked)

    def wait_acked(self, timeout: float = 60.0) -> None:
        """Until the broker has acknowledged everything published (paho re-sends what a broker
        restart lost in flight)."""

        def all_acked() -> bool:
            with self._lock:
                return len(self._acked) >= len(self.published)

        wait_until(all_acked, timeout, f"the broker acknowledging all {len(self.published)} messages")


# --- a TCP proxy the test can cut -----------------------------------------------------------


class LoopThread:
    """An asyncio loop in a thread of its own, for the suite's asyncio helpers (tests/proxy.py)
    in these thread-driven tests: `run(coro)` runs it there and waits for its result."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="faults loop", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


class CutProxy:
    """The suite's TCP proxy (testsupport/proxy.py) in front of a server (PostgreSQL, a broker),
    driven from this thread: `cut` resets every connection and refuses new ones, `restore` listens
    again on the port."""

    def __init__(self, loop: LoopThread, url: str) -> None:
        parsed = make_url(url)
        self._loop = loop
        self._proxy = TcpProxy(parsed.host or "127.0.0.1", parsed.port or 5432)
        loop.run(self._proxy.start())
        self.url = self._proxy.url(url)  # the same database, through the proxy

    def cut(self) -> None:
        self._loop.run(self._proxy.cut())

    def restore(self) -> None:
        self._loop.run(self._proxy.restore())

    def stop(self) -> None:
        self._loop.run(self._proxy.stop())


# --- counting what arrived ------------------------------------------------------------------


@dataclass
class Tally:
    """What the telemetry store holds: rows per message number for the point `seq`, for the point
    `alarm` and for the points of a wide device (numbered by the device time they carry)."""

    seqs: Counter[int] = field(default_factory=Counter)
    alarms: Counter[int] = field(default_factory=Counter)
    times: dict[int, list[int]] = field(default_factory=dict)  # seq -> the time (ns) of each of its rows
    wide: Counter[tuple[str, int]] = field(default_factory=Counter)  # (point, seq) of a wide device's points

    @property
    def duplicates(self) -> int:
        """Rows beyond the first per message number."""
        return sum(n - 1 for n in self.seqs.values())


class Counting:
    """Reads the telemetry store of a run: `read()` gives a Tally."""

    def __init__(self, read: Callable[[], Tally]) -> None:
        self.read = read

    @staticmethod
    def sqlite(site: FaultSite, publisher: Publisher) -> Counting:
        """The site's SQLite telemetry file, opened read-only for each count."""
        assert site.telemetry_db is not None, "the site's telemetry store is not SQLite"
        path = site.telemetry_db

        def read() -> Tally:
            tally = Tally()
            if not path.exists():
                return tally
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
            try:
                rows = db.execute(
                    "SELECT point, ts, value FROM readings WHERE point IN ('seq', 'alarm') AND quality = 'good'"
                ).fetchall()
            except sqlite3.OperationalError:  # the service has not made the table yet
                return tally
            finally:
                db.close()
            for point, ts, value in rows:
                if point == "seq":
                    tally.seqs[int(value)] += 1
                    tally.times.setdefault(int(value), []).append(ts)
                else:
                    tally.alarms[publisher.seq_of_ts(ts // 1_000_000)] += 1
            return tally

        return Counting(read)

    @staticmethod
    def influx1(server: Influx1, publisher: Publisher, db: str = INFLUX_DB) -> Counting:
        def read() -> Tally:
            tally = Tally()
            for point, counter in (("seq", tally.seqs), ("alarm", tally.alarms)):
                query = {"db": db, "q": f"SELECT num FROM telemetry WHERE point = '{point}'", "epoch": "ms"}
                query |= {"chunked": "true", "chunk_size": "20000"}
                with urllib.request.urlopen(f"{server.url}/query?{urllib.parse.urlencode(query)}", timeout=30) as r:
                    body = r.read()
                for line in body.splitlines():
                    for result in json.loads(line).get("results", []):
                        assert "error" not in result, result
                        for series in result.get("series", []):
                            for ts, num in series["values"]:
                                counter[int(num) if point == "seq" else publisher.seq_of_ts(ts)] += 1
            return tally

        return Counting(read)

    @staticmethod
    def victoria(server: VictoriaMetrics, publisher: Publisher) -> Counting:
        def read() -> Tally:
            tally = Tally()
            for series in server.export('__name__="telemetry_num"'):
                point = series["metric"].get("point")
                for value, ts in zip(series["values"], series["timestamps"], strict=True):
                    if point == "seq":
                        tally.seqs[int(value)] += 1
                    elif point == "alarm":
                        tally.alarms[publisher.seq_of_ts(ts)] += 1
                    else:
                        tally.wide[(point, publisher.seq_of_ts(ts))] += 1
            return tally

        return Counting(read)


def wait_flowing(publisher: Publisher, counting: Counting, timeout: float = 30.0) -> None:
    """Until messages flow from device to store again (after a broker restart the service
    reconnects on its own schedule): a new numbered message each second until one is stored. The
    probes are counted like every other message."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        probe = publisher.publish()

        def stored(probe: int = probe) -> bool:
            return probe in counting.read().seqs

        try:
            wait_until(stored, 1.0, "a probe stored", interval=0.1)
            return
        except TimeoutError:
            continue
    raise TimeoutError(f"no message reached the store within {timeout:g}s")


def spool_segments(spool: Path) -> int:
    """Batches waiting on disk for the telemetry store."""
    return sum(1 for _ in spool.rglob("*.seg")) if spool.exists() else 0


def settle(
    counting: Counting,
    expected: Collection[int],
    spool: Path,
    *,
    quiet_s: float = 6.0,
    timeout: float = 60.0,
    complete: Callable[[Tally], bool] | None = None,
) -> Tally:
    """Count until every expected number is in the store; or until for `quiet_s` the count has not
    changed and nothing has waited in the spool (the service is done: what is missing is lost);
    or until the deadline (the spool still waits for a retry).

    `quiet_s` is longer than the service holds readings in memory on purpose: the writer cuts its
    buffer only every 5 s while its spool replays, so a shorter quiet spell can end the count
    while acknowledged readings are still on their way. `complete` replaces "every expected
    number is in the store" as the sign that the count is done."""
    wanted = set(expected)
    deadline = time.monotonic() + timeout
    last: tuple[int, int, int] | None = None
    changed = time.monotonic()
    while True:
        tally = counting.read()
        if complete(tally) if complete is not None else wanted <= tally.seqs.keys():
            return tally
        now = time.monotonic()
        shape = (sum(tally.seqs.values()), sum(tally.alarms.values()), sum(tally.wide.values()))
        if shape != last or spool_segments(spool):  # quiet means: no change, and nothing spooled
            last, changed = shape, now
        elif now - changed >= quiet_s:
            return tally
        if now > deadline:
            return tally
        time.sleep(0.25)


@dataclass
class Outcome:
    """What a run delivered, against what the broker acknowledged."""

    name: str
    published: int
    acked: set[int]
    tally: Tally

    @property
    def lost(self) -> list[int]:
        return sorted(self.acked - self.tally.seqs.keys())

    @property
    def duplicates(self) -> int:
        return self.tally.duplicates

    def summary(self) -> str:
        lost = self.lost
        sample = f" (first: {lost[:10]})" if lost else ""
        return (
            f"[{self.name}] published={self.published} acked={len(self.acked)} "
            f"stored={len(self.tally.seqs)} lost={len(lost)}{sample} duplicates={self.duplicates}"
        )


def outcome(
    name: str,
    publisher: Publisher,
    counting: Counting,
    spool: Path,
    timeout: float = 60.0,
    complete: Callable[[Tally], bool] | None = None,
) -> Outcome:
    """Wait for the store to settle and compare it with what the broker acknowledged; prints the
    counts (shown with -s, and in the report of a failing test)."""
    acked = publisher.acked
    tally = settle(counting, acked, spool, timeout=timeout, complete=complete)
    result = Outcome(name, publisher.count, acked, tally)
    print(result.summary())
    return result


def recorded_alarms(url: str, actions: Collection[str] = ("raised", "raised again")) -> tuple[int, int]:
    """(alarm rows of the test rule, their history entries of `actions`: by default its
    activations), asked of the PostgreSQL ops store at `url` directly."""
    return asyncio.run(alarm_counts(url, RULE_ID, actions=actions))


# --- processes of the test's own ------------------------------------------------------------


def pause(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGSTOP: a hung server, accepting connections and answering nothing."""
    assert proc is not None
    os.kill(proc.pid, signal.SIGSTOP)


def resume(proc: subprocess.Popen[bytes] | None) -> None:
    assert proc is not None
    os.kill(proc.pid, signal.SIGCONT)


def _resume_if_alive(server: Influx1 | VictoriaMetrics) -> None:
    if server.proc is not None and server.proc.poll() is None:
        resume(server.proc)


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A small tmpfs at `path` (the suite runs as root), unmounted afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if mounted.returncode != 0:
        raise RuntimeError(f"cannot mount a tmpfs at {path} (the fault tests run as root): {mounted.stderr!r}")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


class Rig:
    """One test's processes: everything started through it is stopped (by pid) at the end, the
    service first, then the publisher, the stores and the broker."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.broker = Broker(folder)
        self._stack = contextlib.ExitStack()
        self._stack.callback(self.broker.stop)
        self.broker.start()

    def site(self, **kwargs: Any) -> FaultSite:
        return write_fault_site(self.folder, self.broker, **kwargs)

    def publisher(self, site: FaultSite) -> Publisher:
        publisher = Publisher(self.broker, site)
        self._stack.callback(publisher.close)
        publisher.connect()
        return publisher

    def service(self, site: FaultSite, parts: str | None = None, name: str = "service") -> Service:
        """`facility run` of the site: every part, or the `parts` given (`--parts`, with `name` as
        its `--instance`)."""
        service = Service(site, self.broker, name, parts)
        self._stack.callback(service.stop)
        return service

    def processes(self, site_id: str, parts: str, names: Collection[str], **site: Any) -> list[Service]:
        """`facility run --parts <parts>` processes of one estate, one per name (its `--instance`),
        each with a site folder of its own (`write_fault_site(**site)`): writers or rule workers."""
        folders = [write_fault_site(self.folder / name, self.broker, site_id=site_id, **site) for name in names]
        return [self.service(folder, parts, name) for folder, name in zip(folders, names, strict=True)]

    def influx1(self) -> Influx1:
        folder = self.folder / "influxd"
        folder.mkdir()
        server = Influx1(folder)
        self._stack.callback(server.stop)
        self._stack.callback(_resume_if_alive, server)  # a paused server cannot stop
        server.start()
        server.execute(f"CREATE DATABASE {INFLUX_DB}")
        return server

    def victoria(self) -> VictoriaMetrics:
        folder = self.folder / "vm"
        folder.mkdir()
        server = VictoriaMetrics(folder)
        self._stack.callback(server.stop)
        self._stack.callback(_resume_if_alive, server)
        server.start()
        return server

    def proxy(self, url: str) -> CutProxy:
        """A proxy in front of the server of `url` (a database's or a broker's); its `url` is the
        one to give the site."""
        loop = LoopThread()
        self._stack.callback(loop.close)
        proxy = CutProxy(loop, url)
        self._stack.callback(proxy.stop)
        return proxy

    def enter(self, cm: contextlib.AbstractContextManager[Any]) -> Any:
        return self._stack.enter_context(cm)

    def close(self) -> None:
        self._stack.close()
