"""The deployment files: docker-compose accepts the compose file, and its site file loads."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import yaml

from facility.mqtt_acl import render_acl
from facility.site import load_site
from tests.servers import require_binary

SECRETS = {
    "FACILITY_TOKEN": "t" * 32,
    "FACILITY_MQTT_USERNAME": "facility",
    "FACILITY_MQTT_PASSWORD": "p" * 32,
    "INFLUXDB_USERNAME": "admin",
    "INFLUXDB_PASSWORD": "q" * 32,
    "INFLUXDB_TOKEN": "r" * 32,
}
# Where the host publishes the desk and the broker's TLS listener: no default, each is a decision.
ADDRESSES = {"FACILITY_DESK_ADDRESS": "192.0.2.10", "FACILITY_MQTT_TLS_ADDRESS": "198.51.100.20"}


def _config(repo_root: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    compose = require_binary("docker-compose", "docker-compose")
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS and k not in ADDRESSES}
    return subprocess.run(
        [compose, "-f", str(repo_root / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **env},
        cwd=repo_root,
    )


def test_compose_file_is_accepted(repo_root: Path) -> None:
    result = _config(repo_root, {**SECRETS, **ADDRESSES})
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert {"mosquitto", "influxdb", "facility", "simulators"} <= services.keys()
    assert services["influxdb"]["environment"]["DOCKER_INFLUXDB_INIT_BUCKET"] == "telemetry"
    assert services["influxdb"]["environment"]["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"] == SECRETS["INFLUXDB_TOKEN"]


def test_compose_refuses_to_run_without_secrets(repo_root: Path) -> None:
    result = _config(repo_root, {})
    assert result.returncode != 0
    assert "FACILITY_" in result.stderr or "INFLUXDB_" in result.stderr


def test_broker_takes_no_anonymous_clients(repo_root: Path) -> None:
    conf = (repo_root / "deploy/mosquitto.conf").read_text().splitlines()
    assert "allow_anonymous false" in conf
    assert any(line.startswith("password_file ") for line in conf)
    assert "acl_file /mosquitto/config/mosquitto.acl" in conf
    tls = conf[conf.index("listener 8883") :]
    assert {"certfile /mosquitto/certs/server.crt", "keyfile /mosquitto/certs/server.key"} <= set(tls)


def test_only_what_users_need_is_published(repo_root: Path) -> None:
    """The desk and MQTT over TLS on the addresses chosen in .env; plain MQTT nowhere; InfluxDB
    and the simulators' control API on the host's loopback only."""
    services = yaml.safe_load(_config(repo_root, {**SECRETS, **ADDRESSES}).stdout)["services"]
    published = {name: service.get("ports", []) for name, service in services.items()}
    assert published == {
        "facility": [f"{ADDRESSES['FACILITY_DESK_ADDRESS']}:8000:8000/tcp"],
        "mosquitto": [f"{ADDRESSES['FACILITY_MQTT_TLS_ADDRESS']}:8883:8883/tcp"],
        "influxdb": ["127.0.0.1:8086:8086/tcp"],
        "simulators": ["127.0.0.1:8001:8001/tcp"],
    }


def test_every_client_has_its_own_broker_user(repo_root: Path) -> None:
    """The broker's users: the service's from the environment, the devices' from the secret file
    the simulators read too; hashed in place, never a password on a command line."""
    services = yaml.safe_load(_config(repo_root, {**SECRETS, **ADDRESSES}).stdout)["services"]
    start = "\n".join(services["mosquitto"]["command"])
    assert "mosquitto_passwd -U" in start and "mosquitto_passwd -b" not in start
    assert "/run/secrets/mqtt-device-passwords" in start
    simulators = services["simulators"]
    assert simulators["environment"]["FACILITY_MQTT_DEVICE_PASSWORDS"] == "/run/secrets/mqtt-device-passwords"
    assert "FACILITY_MQTT_PASSWORD" not in simulators["environment"]  # the service's password is the service's
    assert [s["source"] for s in simulators["secrets"]] == [s["source"] for s in services["mosquitto"]["secrets"]]


def test_the_deployed_acl_is_the_one_the_site_file_gives(repo_root: Path) -> None:
    """deploy/mosquitto.acl is rendered from deploy/site.yaml: a device added to one and not the
    other would be refused by the broker (render it again with `facility broker acl`)."""
    site = load_site(repo_root / "deploy/site.yaml")
    assert (repo_root / "deploy/mosquitto.acl").read_text() == render_acl(site)


def test_env_example_lists_every_variable_compose_needs(repo_root: Path) -> None:
    required = set(re.findall(r"\$\{(\w+):\?", (repo_root / "docker-compose.yml").read_text()))
    example = (repo_root / "deploy/env.example").read_text().splitlines()
    listed = {line.split("=", 1)[0] for line in example if line and not line.startswith("#")}
    assert required <= listed, required - listed


def test_deployed_site_file_loads(repo_root: Path) -> None:
    site = load_site(repo_root / "deploy/site.yaml")
    assert site.broker.host == "mosquitto"
    assert site.broker.password_env == "FACILITY_MQTT_PASSWORD"


def test_the_ci_script_parses_and_ends_in_what_a_user_runs(repo_root: Path) -> None:
    script = repo_root / ".ci" / "run"
    checked = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert script.read_text().rstrip().splitlines()[-1] == "make test"
