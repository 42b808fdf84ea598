"""The image's contents, without Docker: what the Dockerfile copies must make a complete service.

The Dockerfile installs the project from the files its COPY lines give it, and hatchling builds a
wheel without complaint when a package of `[tool.hatch.build.targets.wheel] packages` is missing:
the image then fails at its first import. So the test does what the image build does: copies
exactly those files to a folder of its own, builds the wheel from them (`pip wheel`, hatchling
fetched by pip's build isolation) and installs it (`--no-deps`) into a fresh virtualenv. That
virtualenv sees the project's dependencies through a `.pth` line naming the project venv's
site-packages (processed after its own, and without the `.pth` files there, so the project's
editable install is not seen), never the source tree: the commands run from a folder of the test.

The installed `facility run` then serves deploy/site.yaml as compose runs it, with only its
addresses moved to the test's ports: the broker a real Mosquitto built from deploy/mosquitto.conf
with a password file made as compose makes it and deploy/mosquitto.acl itself; the telemetry
store the deployment's InfluxStore (v2 write API; org, bucket and token from INFLUXDB_ORG,
INFLUXDB_BUCKET and INFLUXDB_TOKEN) on VictoriaMetrics (the v2 write API) and InfluxDB 1.x
(InfluxQL reads), joined behind InfluxDB 2's HTTP face (`Influx2Front`: no InfluxDB 2 runs here);
and the plant the installed `facility sim run`, its MQTT devices connecting as their own users.
Tokens are given in the environment only.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import tomllib
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from facility.netutil import free_port
from tests.faults.harness import DEPLOY_CONF, broker_conf, compose_password_files, wait_until
from testsupport.influx_servers import Influx1, VictoriaMetrics
from testsupport.servers import http_json, require_binary, wait_listening

REPO = Path(__file__).resolve().parents[1]
# The environment running the tests (the project venv): its pip builds and installs, and its
# site-packages give the installed wheel its dependencies.
PYTHON = sys.executable
DEPENDENCIES = Path(sysconfig.get_paths()["purelib"])
SERVICE_USER = "facility"  # deploy/site.yaml's broker.username
WAIT_S = 45.0  # the longest a start or a first reading may take on a busy machine
# Variables of the test's own environment that would let the installed command find the source
# tree or the test's secrets: the processes get none of them.
_INHERITED_OUT = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "FACILITY_", "INFLUXDB_")


def wheel_packages() -> list[str]:
    """pyproject.toml's `[tool.hatch.build.targets.wheel] packages`: what the image must hold."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages: list[str] = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    return packages


def dockerfile_copies(dockerfile: Path) -> list[str]:
    """The sources of the Dockerfile's COPY lines from the build context (not `--from` a stage),
    in order; options (`--chown=...`) left out, the destination too."""
    sources: list[str] = []
    # Instructions, with their `\`-continued lines joined; comment lines are no part of them.
    text = "\n".join(line for line in dockerfile.read_text().splitlines() if not line.lstrip().startswith("#"))
    for instruction in text.replace("\\\n", " ").splitlines():
        if instruction.split(maxsplit=1)[:1] not in (["COPY"], ["copy"]):
            continue
        args = shlex.split(instruction)[1:]
        if any(arg.startswith("--from") for arg in args):
            continue
        sources += [arg for arg in args if not arg.startswith("--")][:-1]
    return sources


def clean_env(**given: str) -> dict[str, str]:
    """The environment of a process of the installed package: the test's own, less what names
    the source tree or secrets, with the venv's commands first on PATH, and `given` on top."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_INHERITED_OUT)}
    return {**env, "PYTHONUNBUFFERED": "1", **given}


@dataclass(frozen=True)
class Installed:
    """A virtualenv holding the wheel built from the Dockerfile's files, and a folder to run in."""

    venv: Path
    cwd: Path

    @property
    def facility(self) -> str:
        return str(self.venv / "bin" / "facility")

    @property
    def site_packages(self) -> Path:
        return self.venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel pip builds from exactly what the Dockerfile copies (as `pip install .` does there)."""
    context = tmp_path_factory.mktemp("image-context")
    for source in dockerfile_copies(REPO / "Dockerfile"):
        origin = REPO / source
        if origin.is_dir():
            shutil.copytree(origin, context / source, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(origin, context / source)
    dist = tmp_path_factory.mktemp("image-dist")
    built = subprocess.run(
        [PYTHON, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(dist), str(context)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=dist,
        env=clean_env(),
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (found,) = dist.glob("*.whl")
    return found


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The wheel installed alone (`--no-deps`) into a new virtualenv that sees the project venv's
    dependencies after its own site-packages."""
    folder = tmp_path_factory.mktemp("image-venv")
    venv = folder / "venv"
    subprocess.run([PYTHON, "-m", "venv", "--without-pip", str(venv)], check=True)
    subprocess.run(
        [PYTHON, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--quiet", "--no-deps", str(wheel)],
        check=True,
        capture_output=True,
        timeout=120,
        env=clean_env(),
    )
    result = Installed(venv, folder / "run")
    result.cwd.mkdir()
    (result.site_packages / "zz_project_dependencies.pth").write_text(f"{DEPENDENCIES}\n")
    return result


def test_the_dockerfile_copies_every_package_of_the_wheel() -> None:
    copied = set(dockerfile_copies(REPO / "Dockerfile"))
    assert {"pyproject.toml", "README.md"} <= copied  # the build's metadata and readme
    missing = [package for package in wheel_packages() if package not in copied]
    assert not missing, f"the Dockerfile does not COPY {missing}, which the wheel is to hold"


def test_the_wheel_from_the_dockerfiles_files_holds_every_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        top = {name.split("/", 1)[0] for name in archive.namelist() if name.endswith(".py")}
    missing = sorted(set(wheel_packages()) - top)
    assert not missing, f"the wheel built from the Dockerfile's files lacks {missing}"


def test_the_installed_packages_come_from_the_wheel_not_the_source_tree(installed: Installed) -> None:
    imports = "; ".join(f"import {p}; print({p}.__file__)" for p in wheel_packages())
    ran = subprocess.run(
        [str(installed.venv / "bin" / "python"), "-c", imports],
        capture_output=True, text=True, timeout=60, cwd=installed.cwd, env=clean_env(),
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    files = [Path(line) for line in ran.stdout.splitlines()]
    assert len(files) == len(wheel_packages())
    assert all(f.is_relative_to(installed.site_packages) for f in files), files


# --- the deployment, served by the installed package -----------------------------------------


def compose_stop_signal(service: str) -> signal.Signals:
    """The signal `docker-compose stop` sends the service (`stop_signal`, SIGTERM by default)."""
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    return signal.Signals[services[service].get("stop_signal", "SIGTERM")]


class Process:
    """A command of the installed package as compose service `name`, its output in a file;
    stopped by pid with the signal compose stops that service with."""

    def __init__(self, name: str, args: list[str], installed: Installed, env: Mapping[str, str], logs: Path) -> None:
        self.name = name
        self.stop_signal = compose_stop_signal(name)
        self.log = logs / f"{name}.log"
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [installed.facility, *args], cwd=installed.cwd, env=dict(env), stdout=log, stderr=subprocess.STDOUT
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int | None:
        """The stop signal, and the exit code once it has drained; None when it had to be killed."""
        if self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal)
            try:
                return self.proc.wait(40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                return None
        return self.proc.returncode


class Influx2Front:
    """InfluxDB 2's HTTP face, as the service uses it, in front of the two real servers that stand
    in for it (no InfluxDB 2 runs here): a v2 write (`/api/v2/write?org=&bucket=`) goes verbatim
    to VictoriaMetrics, which speaks that API, and as the same line protocol to InfluxDB 1.x's
    `/write?db=<bucket>`; an InfluxQL `/query` goes to InfluxDB 1.x, for the databases a DBRP
    mapping would give (`mapped`). Like InfluxDB 2 it refuses another token (401) and another org
    (404), so the org and the token from the environment are tested as deployed."""

    def __init__(self, vm: VictoriaMetrics, influx: Influx1, token: str, org: str, mapped: set[str]) -> None:
        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, body: bytes = b"", kind: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _forward(self, method: str, url: str, body: bytes | None = None) -> tuple[int, bytes]:
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "content-encoding")}
                request = urllib.request.Request(url, data=body, method=method, headers=headers)
                try:
                    with urllib.request.urlopen(request, timeout=10) as response:
                        return response.status, response.read()
                except urllib.error.HTTPError as exc:
                    return exc.code, exc.read()

            def _refused(self, query: dict[str, list[str]]) -> bool:
                if self.headers.get("Authorization") != f"Token {token}":
                    self._answer(401, b'{"code":"unauthorized","message":"unauthorized access"}')
                    return True
                if "org" in query and query["org"] != [org]:
                    self._answer(404, b'{"code":"not found","message":"organization not found"}')
                    return True
                return False

            def do_POST(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(url.query)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if url.path != "/api/v2/write":
                    self._answer(404)
                elif not self._refused(query):
                    v1 = {"db": query["bucket"][0], "precision": query.get("precision", ["ns"])[0]}
                    answers = [
                        self._forward("POST", f"{vm.url}{self.path}", body),
                        self._forward("POST", f"{influx.url}/write?{urllib.parse.urlencode(v1)}", body),
                    ]
                    status, reply = next((a for a in answers if a[0] >= 300), answers[0])
                    self._answer(status, reply)

            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(url.query)
                if url.path != "/query":
                    self._answer(404)
                elif not self._refused(query):
                    if query.get("db", [""])[0] not in mapped:
                        self._answer(404, b'{"code":"not found","message":"database not found"}')
                    else:
                        self._answer(*self._forward("GET", f"{influx.url}{self.path}"))

            def log_message(self, format: str, *args: Any) -> None:  # no access log in the test's output
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="influxdb 2 front", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


@dataclass
class Deployment:
    """deploy/site.yaml moved to the test's ports, and the servers and secrets it runs with."""

    site: Path
    broker_port: int
    vm: VictoriaMetrics
    influx: Influx1
    store: Influx2Front
    passwords: Path  # the devices' `id:password` lines, as the compose secret holds them
    service_password: str
    influx_token: str
    influx_org: str  # INFLUXDB_ORG and INFLUXDB_BUCKET of the operator's .env, not the defaults
    influx_bucket: str


def deployed_site(folder: Path, broker_port: int, store_url: str) -> Path:
    """deploy/site.yaml with its addresses and folders on the test's side, all else as deployed:
    the broker's user and password variable, the telemetry store's org, bucket and token variable,
    the devices, their profiles and the rule library."""
    doc: dict[str, Any] = yaml.safe_load((REPO / "deploy/site.yaml").read_text())
    telemetry = doc["stores"]["telemetry"]
    assert isinstance(telemetry, dict), "deploy/site.yaml stores telemetry elsewhere than in InfluxDB"
    doc["broker"]["url"] = f"mqtt://127.0.0.1:{broker_port}"
    telemetry["url"] = store_url
    doc["stores"]["spool"] = str(folder / "spool")
    doc["stores"]["ops"] = f"sqlite+aiosqlite:///{folder / 'ops.db'}"
    ports: dict[int, int] = {}  # devices behind one Modbus gateway stay behind one
    for device in doc["devices"]:
        if "modbus" in device:
            binding = device["modbus"]
            binding["host"] = "127.0.0.1"
            binding["port"] = ports.setdefault(binding["port"], free_port())
    path = folder / "site.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))
    return path


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    """Mosquitto on deploy/mosquitto.conf (its ACL deploy/mosquitto.acl); VictoriaMetrics and
    InfluxDB 1.x behind an InfluxDB 2 front, set up with an org and bucket of the operator's
    choosing (as compose sets InfluxDB up from .env, other than the site file's fallbacks) and the
    bucket's DBRP mapping (deploy/influxdb/initdb)."""
    doc = yaml.safe_load((REPO / "deploy/site.yaml").read_text())
    mqtt_devices = [d["id"] for d in doc["devices"] if "mqtt" in d]
    service_password = secrets.token_hex(16)
    passwords, passwd = compose_password_files(
        tmp_path, (SERVICE_USER, service_password), {device: secrets.token_hex(16) for device in mqtt_devices}
    )
    data = tmp_path / "broker-data"
    data.mkdir()
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    user = pwd.getpwuid(os.getuid()).pw_name  # Mosquitto run as root would drop to a user of its own
    conf.write_text(broker_conf(DEPLOY_CONF.read_text(), port, passwd, data, user, REPO / "deploy/mosquitto.acl"))
    with (tmp_path / "mosquitto.log").open("ab") as log:
        broker = subprocess.Popen([require_binary("mosquitto", "mosquitto"), "-c", str(conf)], stdout=log, stderr=log)
    for folder in ("vm", "influxd"):
        (tmp_path / folder).mkdir()
    vm, influx = VictoriaMetrics(tmp_path / "vm"), Influx1(tmp_path / "influxd")
    store: Influx2Front | None = None
    telemetry = doc["stores"]["telemetry"]
    influx_token, org, bucket = secrets.token_hex(24), "estate-east", "east_telemetry"
    assert (org, bucket) != (telemetry["org"], telemetry["bucket"])
    try:
        wait_listening(port, proc=broker)
        vm.start()
        influx.start()
        influx.execute(f"CREATE DATABASE {bucket}")  # the bucket InfluxDB's setup makes
        store = Influx2Front(vm, influx, influx_token, org, mapped={bucket})
        site = deployed_site(tmp_path, port, store.url)
        yield Deployment(site, port, vm, influx, store, passwords, service_password, influx_token, org, bucket)
    finally:
        if store is not None:
            store.close()
        influx.stop()
        vm.stop()
        broker.terminate()
        broker.wait(15)


def _get(url: str, token: str | None = None) -> tuple[int, str, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read()


def test_the_installed_service_runs_the_deployment(installed: Installed, deployment: Deployment) -> None:
    """Readings of a Modbus pump and an MQTT lift reach the API and the store, a fault injected in
    the simulators comes through as its alarm, and the desk page is served."""
    token = secrets.token_urlsafe(32)
    sim_port, api_port = free_port(), free_port()
    site = str(deployment.site)
    sims = Process(
        "simulators",
        ["sim", "run", site, "--host", "127.0.0.1", "--port", str(sim_port)],
        installed,
        clean_env(FACILITY_TOKEN=token, FACILITY_MQTT_DEVICE_PASSWORDS=str(deployment.passwords)),
        deployment.site.parent,
    )
    service: Process | None = None
    codes: dict[str, int | None] = {}
    try:
        wait_listening(sim_port, timeout=WAIT_S, proc=sims.proc)
        service = Process(
            "facility",
            ["run", "-c", site, "--host", "127.0.0.1", "--port", str(api_port)],
            installed,
            clean_env(
                FACILITY_TOKEN=token,
                FACILITY_MQTT_PASSWORD=deployment.service_password,
                INFLUXDB_TOKEN=deployment.influx_token,
                INFLUXDB_ORG=deployment.influx_org,
                INFLUXDB_BUCKET=deployment.influx_bucket,
            ),
            deployment.site.parent,
        )
        wait_listening(api_port, timeout=WAIT_S, proc=service.proc)
        api = f"http://127.0.0.1:{api_port}"

        def heard(device: str) -> dict[str, Any] | None:
            state = http_json(f"{api}/api/v1/devices/{device}", token=token)
            good = (
                state.get("online")
                and state["points"]
                and all(p["quality"] == "good" for p in state["points"].values())
            )
            return state if good else None

        def stored(device: str) -> list[dict[str, Any]]:
            return deployment.vm.export(f'__name__="telemetry_num",device="{device}"')

        for device in ("pump-b2-1", "elevator-b1-1"):  # one on Modbus TCP, one on MQTT as its own user
            wait_until(partial(heard, device), WAIT_S, f"good readings of {device} in the API")
            wait_until(partial(stored, device), WAIT_S, f"readings of {device} in the telemetry store")
        # The trend of a point, read back with InfluxQL from the bucket's database.
        history = f"{api}/api/v1/devices/pump-b2-1/points/outlet_pressure/history"
        samples = wait_until(lambda: http_json(history, token=token)["samples"], WAIT_S, "the pump's history")
        assert all(isinstance(s["mean"], float) for s in samples), samples

        fault = {"device": "elevator-b1-1", "fault": "entrapment"}
        http_json(f"http://127.0.0.1:{sim_port}/sim/faults", "POST", fault, token)  # raises unless accepted

        def entrapment() -> list[dict[str, Any]]:
            alarms = http_json(f"{api}/api/v1/alarms", token=token)["items"]
            return [a for a in alarms if (a["rule"], a["device"]) == ("elevator-entrapment", "elevator-b1-1")]

        (alarm,) = wait_until(entrapment, WAIT_S, "the entrapment's alarm")
        assert alarm["priority"] == "emergency", alarm

        status, kind, body = _get(f"{api}/")
        assert status == 200 and kind.startswith("text/html"), (status, kind)
        assert b"<html" in body.lower()
    finally:
        for process in (service, sims):
            if process is not None:
                codes[process.name] = process.stop()
    for process in (service, sims):
        assert process is not None
        output = process.output()
        assert codes[process.name] == 0, f"{process.name} exited with {codes[process.name]}:\n{output[-4000:]}"
        assert "Traceback" not in output, output[-4000:]
        for secret in (token, deployment.service_password, deployment.influx_token):
            assert secret not in output  # no secret given to a process is in its output


def test_the_installed_service_refuses_the_examples_placeholder_secrets(installed: Installed, tmp_path: Path) -> None:
    """`facility run` with `.env` copied from deploy/env.example and its secrets left as they are:
    it exits 2 naming each variable, never its value, instead of serving with them."""
    api_port = free_port()
    site = deployed_site(tmp_path, free_port(), "http://127.0.0.1:9")  # nothing need answer: it must not start
    placeholders = {"FACILITY_TOKEN": "replace-with-a-long-random-token", "INFLUXDB_TOKEN": "replace-with-a-token"}
    service = Process(
        "facility",
        ["run", "-c", str(site), "--host", "127.0.0.1", "--port", str(api_port)],
        installed,
        clean_env(FACILITY_MQTT_PASSWORD=secrets.token_hex(16), **placeholders),
        tmp_path,
    )
    try:

        def exited_or_serving() -> bool:
            if service.proc.poll() is not None:
                return True
            try:
                socket.create_connection(("127.0.0.1", api_port), timeout=0.5).close()
            except OSError:
                return False
            return True

        wait_until(exited_or_serving, WAIT_S, "`facility run` to refuse or to serve")
    finally:
        code = service.stop()
    output = service.output()
    assert code == 2, f"`facility run` did not refuse the placeholder secrets (exit {code}, not 2):\n{output[-2000:]}"
    assert all(name in output for name in placeholders), output
    assert not any(value in output for value in placeholders.values()), output
