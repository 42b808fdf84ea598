"""The deployment files: docker-compose accepts the compose file, and its site file loads."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from facility.mqtt_acl import render_acl
from facility.site import InfluxStore, load_site
from facility_app.places import local_dir
from testsupport.servers import require_binary

SECRETS = {
    "FACILITY_TOKEN": "t" * 32,
    "FACILITY_MQTT_USERNAME": "facility",
    "FACILITY_MQTT_PASSWORD": "p" * 32,
    "INFLUXDB_USERNAME": "admin",
    "INFLUXDB_PASSWORD": "q" * 32,
    "INFLUXDB_TOKEN": "r" * 32,
    "GRAFANA_ADMIN_PASSWORD": "g" * 32,
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
    """The desk and MQTT over TLS on the addresses chosen in .env; plain MQTT nowhere; InfluxDB,
    the simulators' control API, Grafana and Prometheus on the host's loopback only."""
    services = yaml.safe_load(_config(repo_root, {**SECRETS, **ADDRESSES}).stdout)["services"]
    published = {name: service.get("ports", []) for name, service in services.items()}
    assert published == {
        "facility": [f"{ADDRESSES['FACILITY_DESK_ADDRESS']}:8000:8000/tcp"],
        "mosquitto": [f"{ADDRESSES['FACILITY_MQTT_TLS_ADDRESS']}:8883:8883/tcp"],
        "influxdb": ["127.0.0.1:8086:8086/tcp"],
        "simulators": ["127.0.0.1:8001:8001/tcp"],
        "grafana": ["127.0.0.1:3000:3000/tcp"],
        "prometheus": ["127.0.0.1:9090:9090/tcp"],
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


def _compose_file(repo_root: Path) -> dict[str, Any]:
    """docker-compose.yml as written, variables not filled in: what is fixed in the file itself."""
    services: dict[str, Any] = yaml.safe_load((repo_root / "docker-compose.yml").read_text())["services"]
    return services


def _example(repo_root: Path) -> dict[str, str]:
    lines = (repo_root / "deploy/env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))


def test_every_image_is_an_exact_release(repo_root: Path) -> None:
    """A floating tag (`influxdb:2.7`, `python:3.11-slim`) is another server at each pull: a
    rebuild or a new host would run an upgrade nobody chose."""
    exact = re.compile(r"^[\w./-]+:v?\d+\.\d+\.\d+([-.][\w.-]+)?$")
    images = {name: s["image"] for name, s in _compose_file(repo_root).items() if "image" in s}
    assert {"mosquitto", "influxdb"} <= images.keys()
    assert all(exact.match(image) for image in images.values()), images
    bases = re.findall(r"^FROM\s+(\S+)", (repo_root / "Dockerfile").read_text(), re.MULTILINE)
    assert bases and all(re.match(r"^python:\d+\.\d+\.\d+-slim-(bookworm|trixie)$", b) for b in bases), bases


def test_the_service_stores_telemetry_in_the_compose_influxdb(repo_root: Path) -> None:
    """deploy/site.yaml writes to the influxdb service with the token, org and bucket of .env: the
    same variables, with the same fallbacks, set InfluxDB up and reach the service."""
    site = load_site(repo_root / "deploy/site.yaml")
    telemetry = site.stores.telemetry
    assert isinstance(telemetry, InfluxStore), telemetry
    assert telemetry.url == "http://influxdb:8086" and telemetry.write_api == "v2"
    assert (telemetry.token_env, telemetry.org_env, telemetry.bucket_env) == (
        "INFLUXDB_TOKEN",
        "INFLUXDB_ORG",
        "INFLUXDB_BUCKET",
    )
    services = _compose_file(repo_root)
    given, init = services["facility"]["environment"], services["influxdb"]["environment"]
    assert given["INFLUXDB_TOKEN"] == "${INFLUXDB_TOKEN}"
    assert init["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"].startswith("${INFLUXDB_TOKEN:")
    assert given["INFLUXDB_ORG"] == init["DOCKER_INFLUXDB_INIT_ORG"] == f"${{INFLUXDB_ORG:-{telemetry.org}}}"
    bucket = f"${{INFLUXDB_BUCKET:-{telemetry.bucket}}}"
    assert given["INFLUXDB_BUCKET"] == init["DOCKER_INFLUXDB_INIT_BUCKET"] == bucket
    assert {"INFLUXDB_ORG", "INFLUXDB_BUCKET", "INFLUXDB_TOKEN"} <= set(_example(repo_root))


def test_org_and_bucket_follow_the_environment_and_fall_back_to_the_site_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    telemetry = InfluxStore(org="facility", org_env="INFLUXDB_ORG", bucket="telemetry", bucket_env="INFLUXDB_BUCKET")
    monkeypatch.delenv("INFLUXDB_ORG", raising=False)
    monkeypatch.delenv("INFLUXDB_BUCKET", raising=False)
    assert (telemetry.org_name, telemetry.bucket_name) == ("facility", "telemetry")
    monkeypatch.setenv("INFLUXDB_ORG", "estate-east")
    monkeypatch.setenv("INFLUXDB_BUCKET", "east-telemetry")
    assert (telemetry.org_name, telemetry.bucket_name) == ("estate-east", "east-telemetry")


def test_influxdb_maps_the_bucket_for_influxql_at_its_first_start(repo_root: Path) -> None:
    """History is read with InfluxQL (`/query?db=<bucket>`), which InfluxDB 2 answers only for a
    database mapped to a bucket (DBRP); the influxdb image runs the init folder after its setup."""
    volumes = _compose_file(repo_root)["influxdb"]["volumes"]
    assert "./deploy/influxdb/initdb:/docker-entrypoint-initdb.d:ro" in volumes
    script = repo_root / "deploy/influxdb/initdb/dbrp.sh"
    assert os.access(script, os.X_OK)  # the image runs *.sh files that are executable
    checked = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    words = " ".join(script.read_text().replace("\\\n", " ").split())
    assert (
        'influx v1 dbrp create --org "$DOCKER_INFLUXDB_INIT_ORG" --bucket-id "$DOCKER_INFLUXDB_INIT_BUCKET_ID"' in words
    )
    assert '--db "$DOCKER_INFLUXDB_INIT_BUCKET" --rp autogen --default' in words


def test_the_service_keeps_its_files_on_its_volume(repo_root: Path) -> None:
    """The site file's folder is mounted read-only: the spool and the outcome journal beside it,
    and the ops store, must be on the facility-data volume (/var/lib/facility)."""
    site = load_site(repo_root / "deploy/site.yaml")
    volume = Path("/var/lib/facility")
    assert "facility-data:/var/lib/facility" in _compose_file(repo_root)["facility"]["volumes"]
    assert all(local_dir(site, None, name).is_relative_to(volume) for name in ("spool", "journal"))
    assert site.stores.ops == f"sqlite+aiosqlite:///{volume / 'ops.db'}"
