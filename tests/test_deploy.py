"""The deployment files: docker-compose accepts the compose file, and its site file loads."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

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


def _config(repo_root: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    compose = require_binary("docker-compose", "docker-compose")
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return subprocess.run(
        [compose, "-f", str(repo_root / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **env},
        cwd=repo_root,
    )


def test_compose_file_is_accepted(repo_root: Path) -> None:
    result = _config(repo_root, SECRETS)
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


def test_deployed_site_file_loads(repo_root: Path) -> None:
    site = load_site(repo_root / "deploy/site.yaml")
    assert site.broker.host == "mosquitto"
    assert site.broker.password_env == "FACILITY_MQTT_PASSWORD"


def test_the_ci_script_parses_and_ends_in_what_a_user_runs(repo_root: Path) -> None:
    script = repo_root / ".ci" / "run"
    checked = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert script.read_text().rstrip().splitlines()[-1] == "make test"
