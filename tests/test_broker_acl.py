"""The deployed broker's users, ACL and TLS, on a real Mosquitto with deploy/mosquitto.conf.

The broker runs the deployment's configuration as tests/faults/harness.py rewrites it (ports and
files under the test's folder, the TLS listener kept with a certificate made here), with a
password file built as docker-compose.yml builds it (`user:password` lines hashed in place by
`mosquitto_passwd -U`) and the ACL `facility broker acl` renders for the test's site.

A message that must not arrive is proven absent by one that must, sent after it on the same
connection: Mosquitto handles a connection's packets in order, so once the allowed one is in,
the forbidden one would have been too. No test waits a while and hopes.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import socket
import ssl
import subprocess
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode
from typer.testing import CliRunner

from facility.mqtt_acl import AclError, render_acl
from facility.netutil import free_port
from facility.site import Site, load_site
from facility.yamlfile import ConfigError
from facility_app.cli import app
from simulators.host import SimulatorHost
from simulators.mqtt_front import DEVICE_PASSWORDS_ENV
from tests.faults.harness import DEPLOY_CONF, TlsListener, broker_conf, compose_password_files
from testsupport.servers import require_binary, wait_listening
from testsupport.system import TOKEN, eventually, running_system

SERVICE = "facility"
SERVICE_PASSWORD_ENV = "ACL_TEST_SERVICE_PASSWORD"
LIFTS = ("lift-1", "lift-2")
WAIT_S = 10.0  # the longest any expected message may take on a busy machine
T = TypeVar("T")


def state_topic(lift: str) -> str:
    return f"estate/acl/lifts/{lift}/state"


def status_topic(lift: str) -> str:
    return f"estate/acl/lifts/{lift}/status"


EVENTS = "facility/v1/events/acl/alarm"


@dataclass
class Deployment:
    """A broker started from the deployment's configuration, and what its clients need."""

    site: Site
    site_path: Path
    plain_port: int
    tls_port: int
    ca: Path
    passwords: dict[str, str]  # user -> password
    device_passwords: Path  # the plain `device-id:password` file the simulators read


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA, and a broker certificate it signed for 127.0.0.1 and localhost, with the openssl CLI
    (the venv has no `cryptography`): (ca.crt, server.crt, server.key)."""
    openssl = require_binary("openssl", "openssl")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, cwd=folder)

    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=facility test CA")
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (folder / "server.ext").write_text("subjectAltName = IP:127.0.0.1, DNS:localhost\n")
    run(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-extfile", "server.ext", "-out", "server.crt",
    )  # fmt: skip
    return folder / "ca.crt", folder / "server.crt", folder / "server.key"


def write_site(folder: Path, tls_port: int, ca: Path) -> Site:
    lines = [
        "site: {id: acl, timezone: UTC}",
        f'broker: {{url: "mqtts://127.0.0.1:{tls_port}", username: {SERVICE}, password_env: {SERVICE_PASSWORD_ENV},'
        f' ca_file: "{ca}"}}',
        "devices:",
        *(
            f'  - {{id: {lift}, profile: elevator, mqtt: {{topic: "{state_topic(lift)}", interval: 1s}}}}'
            for lift in LIFTS
        ),
    ]
    path = folder / "site.yaml"
    path.write_text("\n".join(lines) + "\n")
    return load_site(path)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    folder = tmp_path_factory.mktemp("broker-acl")
    ca, certfile, keyfile = make_certificates(folder)
    plain_port, tls_port = free_port(), free_port()
    site = write_site(folder, tls_port, ca)
    passwords = {user: uuid.uuid4().hex for user in (SERVICE, *LIFTS)}
    device_passwords, passwd = compose_password_files(
        folder, (SERVICE, passwords[SERVICE]), {lift: passwords[lift] for lift in LIFTS}
    )
    acl = folder / "acl"
    acl.write_text(render_acl(site))
    data = folder / "data"
    data.mkdir()
    conf = folder / "mosquitto.conf"
    tls = TlsListener(tls_port, {"certfile": certfile, "keyfile": keyfile})
    user = pwd.getpwuid(os.getuid()).pw_name
    conf.write_text(broker_conf(DEPLOY_CONF.read_text(), plain_port, passwd, data, user, acl, tls))
    with (folder / "mosquitto.log").open("ab") as log:
        proc = subprocess.Popen([require_binary("mosquitto", "mosquitto"), "-c", str(conf)], stdout=log, stderr=log)
    try:
        wait_listening(plain_port, proc=proc)
        wait_listening(tls_port, proc=proc)
        yield Deployment(site, folder / "site.yaml", plain_port, tls_port, ca, passwords, device_passwords)
    finally:
        proc.terminate()
        proc.wait(15)


class Client:
    """A paho client on its own network thread, keeping what it receives per topic, in order."""

    def __init__(self, deployment: Deployment, user: str, subscriptions: Sequence[str] = ()) -> None:
        self.received: dict[str, list[bytes]] = defaultdict(list)
        self.granted: list[bool] = []  # per subscription, as the SUBACK says
        self._changed = threading.Condition()
        self._connacks: list[ReasonCode] = []
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"acl-{user}-{uuid.uuid4().hex[:6]}")
        c.username_pw_set(user, deployment.passwords[user])
        c.on_connect = self._on_connect
        c.on_subscribe = self._on_subscribe
        c.on_message = self._on_message
        c.connect("127.0.0.1", deployment.plain_port)
        c.loop_start()
        self._client = c
        reason = self._wait(lambda: self._connacks, f"{user}: no CONNACK")[0]
        assert not reason.is_failure, f"{user} was refused: {reason}"
        if subscriptions:
            c.subscribe([(topic, 1) for topic in subscriptions])
            self._wait(lambda: len(self.granted) == len(subscriptions), f"{user}: no SUBACK")

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        with self._changed:
            self._connacks.append(reason)
            self._changed.notify_all()

    def _on_subscribe(self, _c: Any, _u: Any, _mid: int, reasons: Any, _p: Any) -> None:
        with self._changed:
            self.granted = [not r.is_failure for r in reasons]
            self._changed.notify_all()

    def _on_message(self, _c: Any, _u: Any, message: paho.MQTTMessage) -> None:
        with self._changed:
            self.received[message.topic].append(bytes(message.payload))
            self._changed.notify_all()

    def _wait(self, condition: Callable[[], T | None], what: str) -> T:
        """What `condition` gives once it is truthy (the callbacks notify); fails after WAIT_S."""
        with self._changed:
            result = self._changed.wait_for(condition, WAIT_S)
        assert result, what
        return result

    def publish(self, topic: str, payload: bytes) -> None:
        """At QoS 1, returning once the broker has acknowledged it (PUBACK): the broker answers so
        for a message the ACL drops too, so this says only that the broker has handled it."""
        sent = self._client.publish(topic, payload, qos=1)
        sent.wait_for_publish(WAIT_S)
        assert sent.is_published(), f"no PUBACK for {topic}"

    def wait_for(self, topic: str, payload: bytes) -> None:
        self._wait(lambda: payload in self.received[topic], f"{payload!r} never came on {topic}")

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture
def clients(deployment: Deployment) -> Iterator[Any]:
    """Makes clients of the deployment's broker, and closes them after the test."""
    made: list[Client] = []

    def make(user: str, subscriptions: Sequence[str] = ()) -> Client:
        made.append(Client(deployment, user, subscriptions))
        return made[-1]

    yield make
    for client in made:
        client.close()


def test_a_device_cannot_publish_as_another(clients: Any) -> None:
    topics = [state_topic(lift) for lift in LIFTS]
    gateway = clients(SERVICE, topics)
    assert gateway.granted == [True, True]
    impostor = clients("lift-1")
    impostor.publish(state_topic("lift-2"), b"forged")  # refused by the ACL ...
    impostor.publish(state_topic("lift-1"), b"own")  # ... and the next message of the same connection
    gateway.wait_for(state_topic("lift-1"), b"own")
    assert gateway.received[state_topic("lift-2")] == []

    clients("lift-2").publish(state_topic("lift-2"), b"genuine")
    gateway.wait_for(state_topic("lift-2"), b"genuine")
    assert gateway.received[state_topic("lift-2")] == [b"genuine"]


def test_a_device_cannot_read_the_events_nor_other_devices(clients: Any) -> None:
    service = clients(SERVICE, ["facility/v1/events/#"])
    assert service.granted == [True]
    snoop = clients("lift-1", ["facility/v1/events/#", "#"])
    clients(SERVICE).publish(EVENTS, b'{"alarm": 1}')
    clients("lift-2").publish(state_topic("lift-2"), b"reading")
    service.wait_for(EVENTS, b'{"alarm": 1}')
    # Both messages were routed before this PUBACK was sent: any copy for the snoop came first.
    snoop.publish(state_topic("lift-1"), b"control")
    assert dict(snoop.received) == {}


async def test_the_whole_service_reads_a_simulated_device_over_tls(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`facility run`'s parts on the deployed broker: the gateway and the event publisher connect
    to the TLS listener as the service user, checking the broker against the site's CA; the
    simulated lifts connect over TLS too, each as its own user, with its password from the device
    file. The lift's values reach the API, and so does its status."""
    monkeypatch.setenv(SERVICE_PASSWORD_ENV, deployment.passwords[SERVICE])
    monkeypatch.setenv(DEVICE_PASSWORDS_ENV, str(deployment.device_passwords))
    async with running_system(deployment.site_path, tmp_path / "data") as (url, _site):
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as http:

            async def lift_online() -> dict[str, Any] | None:
                lift = (await http.get("/api/v1/devices/lift-1")).json()
                heard = lift.get("online") and all(p["quality"] == "good" for p in lift["points"].values())
                return lift if heard else None

            lift = await eventually(lift_online, timeout=WAIT_S)
    assert lift["points"]  # every point of the profile, each good


def test_the_tls_listener_is_refused_without_the_ca(deployment: Deployment) -> None:
    """What a client that skips `ca_file` meets: the broker's certificate is not one it trusts."""
    with socket.create_connection(("127.0.0.1", deployment.tls_port), timeout=WAIT_S) as sock:
        with pytest.raises(ssl.SSLCertVerificationError):
            ssl.create_default_context().wrap_socket(sock, server_hostname="127.0.0.1")
    trusted = ssl.create_default_context(cafile=str(deployment.ca))
    with socket.create_connection(("127.0.0.1", deployment.tls_port), timeout=WAIT_S) as sock:
        with trusted.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_simulators_refuse_a_device_password_file_without_the_device(
    deployment: Deployment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    partial = tmp_path / "device-passwords"
    partial.write_text("lift-1:secret-one\n")
    monkeypatch.setenv(DEVICE_PASSWORDS_ENV, str(partial))
    with pytest.raises(ConfigError, match="no line for device lift-2") as raised:
        SimulatorHost(deployment.site)
    partial.write_text("lift-1:secret-one\nlift-2\n")
    with pytest.raises(ConfigError, match=":2: expected DEVICE-ID:PASSWORD") as raised:
        SimulatorHost(deployment.site)
    assert "secret" not in str(raised.value)


def test_the_acl_command_renders_the_site(deployment: Deployment, tmp_path: Path) -> None:
    out = tmp_path / "acl"
    site_file = deployment.site.path("site.yaml")
    result = CliRunner().invoke(app, ["broker", "acl", str(site_file), "--output", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert text == render_acl(deployment.site)
    sections = [block.splitlines()[1:] for block in text.split("\n\n")[1:]]
    assert sections[0] == [
        f"user {SERVICE}",
        *(f"topic read {t}" for lift in LIFTS for t in (state_topic(lift), status_topic(lift))),
        "topic readwrite facility/v1/#",
    ]
    assert sections[1] == [
        "user lift-1",
        f"topic write {state_topic('lift-1')}",
        f"topic write {status_topic('lift-1')}",
    ]


@pytest.mark.parametrize(
    ("devices", "message"),
    [
        (
            ["{id: a, profile: elevator, mqtt: {topic: x/a}}", "{id: b, profile: elevator, mqtt: {topic: x/a}}"],
            "devices a and b share topic 'x/a'",
        ),
        (["{id: a, profile: elevator, mqtt: {topic: facility/v1/events/s/alarm}}"], "under facility/v1/"),
        ([f"{{id: {SERVICE}, profile: elevator, mqtt: {{topic: x/a}}}}"], "would be the service's"),
        (["{id: a, profile: elevator, mqtt: {topic: 'x/a '}}"], "cannot be written in an ACL"),
    ],
)
def test_the_acl_refuses_a_device_that_could_widen_its_grants(tmp_path: Path, devices: list[str], message: str) -> None:
    path = tmp_path / "site.yaml"
    lines = ["site: {id: s}", f"broker: {{username: {SERVICE}}}", "devices:", *(f"  - {d}" for d in devices)]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(AclError, match=message):
        render_acl(load_site(path))


def test_a_status_topic_takes_no_wildcards(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(
        "site: {id: s}\ndevices:\n  - {id: a, profile: elevator, mqtt: {topic: x/a, status_topic: 'x/#'}}\n"
    )
    with pytest.raises(ConfigError, match=r"status_topic: .*no wildcards"):
        load_site(path)


async def until(check: Any, timeout: float = WAIT_S) -> None:
    """Await until `check()` holds; the loop keeps running the clients meanwhile."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "not within the deadline"
        await asyncio.sleep(0.02)
