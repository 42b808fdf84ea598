"""The monitoring of deploy/: Grafana's dashboards show what the service really writes and exposes.

A dashboard that names a point, field or metric nobody writes stays empty without an error, and
nobody notices until the night it was needed. So the names are checked against the code: the
InfluxDB schema against the line protocol facility/store/influx.py writes for the points of the
device profiles, and every InfluxQL query runs on a real InfluxDB (Debian's 1.x, whose InfluxQL
InfluxDB 2's /query speaks) holding readings that writer wrote; the PromQL against what a running
system's /metrics gives, and through promtool. Compose must mount what the provisioning files
name, on the host's loopback only.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from facility.model import Quality, Reading, Value
from facility.netutil import free_port
from facility.profile import BUILTIN_DIR, Profile, load_profiles
from facility.site import InfluxStore
from facility.store import influx
from facility.store.influx import InfluxTelemetry, encode_fields
from testsupport.influx_servers import Influx1
from testsupport.servers import Mosquitto, require_binary
from testsupport.system import TOKEN, eventually, running_system, write_site

ROOT = Path(__file__).resolve().parent.parent
GRAFANA = ROOT / "deploy/grafana"
PROMETHEUS = ROOT / "deploy/prometheus"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
# The plant systems the deployment asks a dashboard for, as profiles name them (`system`); a
# dashboard says which it shows by these tags, and may name only those systems' points.
SYSTEMS = {"water_supply", "drainage", "power", "elevators", "lighting"}
HEALTH_TAG = "health"  # the service's own dashboard: PromQL only
# Series Prometheus makes itself at each scrape, which no /metrics exposes.
SCRAPE_SERIES = {"up"}
# A value of each profile point type (`PointSpec.value_type`), to ask the writer for its fields.
SAMPLE_VALUES: dict[str, Value] = {"number": 1.5, "bool": True, "string": "on"}


def load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def provisioned_datasources() -> dict[str, str]:
    """uid -> type of each data source Grafana is provisioned with."""
    found: dict[str, str] = {}
    for path in sorted((GRAFANA / "provisioning/datasources").glob("*.yaml")):
        for source in yaml.safe_load(path.read_text())["datasources"]:
            found[source["uid"]] = source["type"]
    return found


def targets(board: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(where, panel, target) of every query of a dashboard's panels."""
    for panel in board["panels"]:
        for target in panel["targets"]:
            yield f"{board['uid']} panel {panel['id']} {panel['title']!r} {target['refId']}", panel, target


# --- InfluxDB: the schema the writer writes -----------------------------------------------------


def fields_by_type() -> dict[str, set[str]]:
    """The fields of the line the writer makes for a good reading of each point type."""
    found: dict[str, set[str]] = {}
    for kind, value in SAMPLE_VALUES.items():
        found[kind] = {pair.split("=", 1)[0] for pair in encode_fields(value, Quality.GOOD).split(",")}
    return found


def profiles() -> dict[str, Profile]:
    return load_profiles([BUILTIN_DIR])


def written(systems: set[str]) -> dict[str, set[str]]:
    """point -> the fields written for it, over the profiles of `systems`."""
    fields = fields_by_type()
    found: dict[str, set[str]] = {}
    for profile in profiles().values():
        if profile.system in systems:
            for name, spec in profile.points.items():
                found.setdefault(name, set()).update(fields[spec.value_type])
    return found


_FROM = re.compile(r"\bFROM\s+\"?(\w+)\"?", re.I)
_POINT = re.compile(r"\"?\bpoint\b\"?\s*(=~|!~|!=|<>|=)\s*('[^']*'|/[^/]*/)")
_SELECT = re.compile(r"^\s*SELECT\s+(.*?)\s+FROM\b", re.I | re.S)
_FUNCTION = re.compile(r"\b\w+\s*\(")


def influxql_names(query: str) -> tuple[set[str], set[str], set[str]]:
    """(measurements, points, fields) an InfluxQL query names. Points must be named with `=`, so
    that they can be checked: a regular expression or a negation is an error here."""
    points: set[str] = set()
    for op, operand in _POINT.findall(query):
        assert op == "=" and operand.startswith("'"), f"point {op} {operand}: name each point with ="
        points.add(operand.strip("'"))
    select = _SELECT.match(query)
    fields = set(re.findall(r"[A-Za-z_]\w*", _FUNCTION.sub(" ", select.group(1)))) if select else set()
    return set(_FROM.findall(query)), points, fields


def dashboards_of_systems() -> Iterator[tuple[dict[str, Any], set[str]]]:
    for path in DASHBOARDS:
        board = load(path)
        systems = set(board["tags"]) & SYSTEMS
        if systems:
            yield board, systems


def test_dashboards_are_what_grafana_needs_on_provisioned_sources() -> None:
    sources = provisioned_datasources()
    # Grafana 11.5 on refuses other uids (its flag failWrongDSUID), Grafana 12 always.
    assert all(re.fullmatch(r"[A-Za-z0-9-]{1,40}", uid) for uid in sources), sources
    boards = [load(path) for path in DASHBOARDS]
    uids = [board["uid"] for board in boards]
    assert len(uids) == len(set(uids)), uids
    shown = {tag for board in boards for tag in board["tags"]}
    assert SYSTEMS | {HEALTH_TAG} <= shown, (SYSTEMS | {HEALTH_TAG}) - shown
    for board in boards:
        assert board["title"] and re.fullmatch(r"[\w-]{1,40}", board["uid"]), board.get("uid")
        assert isinstance(board["schemaVersion"], int) and board["panels"], board["uid"]
        panel_ids = [panel["id"] for panel in board["panels"]]
        assert len(panel_ids) == len(set(panel_ids)), board["uid"]
        for where, panel, target in targets(board):
            assert panel["title"] and set(panel["gridPos"]) == {"x", "y", "w", "h"}, where
            for source in (panel["datasource"], target["datasource"]):
                assert sources.get(source["uid"]) == source["type"], (where, source)
        for variable in board["templating"]["list"]:
            assert sources.get(variable["datasource"]["uid"]) == variable["datasource"]["type"], variable["name"]


def test_every_influxql_query_names_a_measurement_point_and_field_the_gateway_writes() -> None:
    checked = 0
    for board, systems in dashboards_of_systems():
        points = written(systems)
        queries = [(where, target["query"]) for where, _, target in targets(board)]
        queries += [(f"{board['uid']} variable {v['name']}", v["query"]) for v in board["templating"]["list"]]
        for where, query in queries:
            measurements, named, fields = influxql_names(query)
            assert measurements == {influx.MEASUREMENT}, (where, measurements)
            assert named and named <= points.keys(), (where, named - points.keys())
            if query.lstrip().upper().startswith("SELECT"):
                assert fields, (where, "names no field")
                for point in named:
                    assert fields <= points[point], (where, point, fields - points[point])
            checked += 1
    assert checked


def influxql_for_grafana(query: str, variables: dict[str, list[str]]) -> str:
    """The query as Grafana sends it: its macros expanded and each variable set to all its values,
    as a regular expression of them."""
    query = query.replace("$timeFilter", "time > now() - 1h").replace("$__interval", "1m")
    for name, values in variables.items():
        query = query.replace(f"${name}", "(" + "|".join(re.escape(v) for v in values) + ")")
    assert "$" not in query.replace("$/", "/"), query
    return query


@pytest.fixture(scope="module")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influx1]:
    """A real InfluxDB holding, for one device of each profile, a reading of every point, written
    by the service's own writer into the bucket (database) compose sets up."""
    with Influx1(tmp_path_factory.mktemp("influx")) as server:
        server.execute('CREATE DATABASE "telemetry"')
        store = InfluxTelemetry(
            InfluxStore(url=server.url, bucket="telemetry", write_api="v1", token_env=None), site="t"
        )
        t = time.time_ns() - 60 * 1_000_000_000
        store.write(
            [
                Reading(f"{name}-1", point, SAMPLE_VALUES[spec.value_type], Quality.GOOD, t)
                for name, profile in profiles().items()
                for point, spec in profile.points.items()
            ]
        )
        store.close()
        yield server


def test_every_influxql_query_answers_on_what_the_writer_wrote(influxdb: Influx1) -> None:
    """A query that names a field of the wrong type, or an aggregate InfluxDB refuses for it,
    answers an error or nothing here; a device variable must pick its systems' devices only, or a
    panel would mix (say) sump levels into the water tanks'."""
    by_profile = profiles()
    for board, systems in dashboards_of_systems():
        variables: dict[str, list[str]] = {}
        for variable in board["templating"]["list"]:
            devices = sorted(row[1] for row in influxdb.select("telemetry", variable["query"]))
            (point,) = influxql_names(variable["query"])[1]
            own = [f"{n}-1" for n, p in by_profile.items() if point in p.points and p.system in systems]
            assert own and devices == sorted(own), (board["uid"], variable["name"], devices)
            variables[variable["name"]] = devices
        for where, _, target in targets(board):
            rows = influxdb.select("telemetry", influxql_for_grafana(target["query"], variables))
            assert any(value is not None for row in rows for value in row[1:]), (where, target["query"])


# --- Prometheus: the metrics the service exposes ------------------------------------------------


_NOT_METRIC_NAMES = re.compile(
    r"\"(?:[^\"\\]|\\.)*\"|\{[^}]*\}|\[[^\]]*\]|\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"
)
_PROMQL_KEYWORDS = {"and", "or", "unless", "offset", "bool", "by", "without", "on", "ignoring"}


def metric_names(expr: str) -> set[str]:
    """The metric names of a PromQL expression: its identifiers that are neither functions nor
    keywords, once strings, label matchers, ranges and grouping clauses are taken out."""
    bare = _NOT_METRIC_NAMES.sub(" ", expr)
    return set(re.findall(r"\b([A-Za-z_:][\w:]*)\b(?!\s*\()", bare)) - _PROMQL_KEYWORDS


def promql() -> list[tuple[str, str]]:
    """(where, expression) of every PromQL Prometheus is given: dashboards' and alert rules'."""
    sources = provisioned_datasources()
    found = [
        (where, target["expr"])
        for board in map(load, DASHBOARDS)
        for where, panel, target in targets(board)
        if sources[target["datasource"]["uid"]] == "prometheus"
    ]
    for group in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]:
        found += [(f"alert {rule['alert']}", rule["expr"]) for rule in group["rules"]]
    return found


async def test_every_promql_expression_names_metrics_a_running_system_exposes(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    site = write_site(tmp_path, mosquitto.url, free_port())
    async with running_system(site, tmp_path / "data") as (url, _site), httpx.AsyncClient(base_url=url) as http:

        async def exposed() -> set[str] | None:
            """The sample names of one scrape, once a reading has been stored and a bus polled."""
            answer = await http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
            assert answer.status_code == 200, answer.text
            samples = {s.name: s.value for f in text_string_to_metric_families(answer.text) for s in f.samples}
            ready = samples.get("facility_readings_stored_total", 0) > 0 and "facility_modbus_requests_total" in samples
            return set(samples) if ready else None

        names = await eventually(exposed, timeout=20)
    expressions = promql()
    assert any(where.startswith("facility-health") for where, _ in expressions)
    for where, expr in expressions:
        used = metric_names(expr)
        assert used and used <= names | SCRAPE_SERIES, (where, used - names - SCRAPE_SERIES)


def promtool(folder: Path, *args: str) -> None:
    done = subprocess.run(
        [require_binary("promtool", "prometheus"), *args], cwd=folder, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_promql_of_the_dashboards_is_valid(tmp_path: Path) -> None:
    """promtool has no query check without a server; a recording rule per expression is one."""
    rules = [{"record": f"dashboard_expr_{i}", "expr": expr} for i, (_, expr) in enumerate(promql())]
    (tmp_path / "exprs.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    promtool(tmp_path, "check", "rules", "exprs.yml")


def test_prometheus_config_loads_the_alerts_and_scrapes_with_a_token_file(tmp_path: Path) -> None:
    """As the container has them: the config, the rules and the token in one folder (promtool
    checks that each file it names is there)."""
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "facility"]  # the alerts select job="facility"
    assert job["metrics_path"] == "/metrics" and job["authorization"]["type"] == "Bearer"
    for name in ("prometheus.yml", *config["rule_files"]):
        (tmp_path / name).write_text((PROMETHEUS / name).read_text())
    (tmp_path / job["authorization"]["credentials_file"]).write_text("a-viewer-token\n")
    promtool(tmp_path, "check", "config", "prometheus.yml")


# --- docker-compose: what the provisioning names is mounted ------------------------------------


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """container path -> host path (relative to the repository) of a service's bind mounts."""
    found: dict[str, str] = {}
    for volume in service["volumes"]:
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            found[target] = source.removeprefix("./")
    return found


def strings(doc: Any) -> Iterator[str]:
    """Every string value of a loaded YAML document, where Grafana expands `$VAR`."""
    if isinstance(doc, str):
        yield doc
    elif isinstance(doc, dict | list):
        for item in doc.values() if isinstance(doc, dict) else doc:
            yield from strings(item)


def test_compose_runs_grafana_and_prometheus_on_request_with_what_they_are_given() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name in ("grafana", "prometheus"):
        service = services[name]
        assert service["profiles"] == ["monitoring"], name
        assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", service["image"]), service["image"]
        assert service["ports"] and all(port.startswith("127.0.0.1:") for port in service["ports"]), name

    grafana = mounts(services["grafana"])
    assert grafana["/etc/grafana/provisioning"] == "deploy/grafana/provisioning"
    for path in sorted((GRAFANA / "provisioning/dashboards").glob("*.yaml")):
        for provider in yaml.safe_load(path.read_text())["providers"]:
            assert grafana[provider["options"]["path"]] == "deploy/grafana/dashboards", provider["name"]
    sources = [yaml.safe_load(p.read_text()) for p in (GRAFANA / "provisioning/datasources").glob("*.yaml")]
    needed = {name for text in strings(sources) for name in re.findall(r"\$\{?(\w+)", text)}
    assert needed and needed <= services["grafana"]["environment"].keys(), needed

    prometheus = mounts(services["prometheus"])
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert prometheus["/etc/prometheus/prometheus.yml"] == "deploy/prometheus/prometheus.yml"
    for name in config["rule_files"]:
        assert prometheus[f"/etc/prometheus/{name}"] == f"deploy/prometheus/{name}"
    for job in config["scrape_configs"]:
        token = prometheus[f"/etc/prometheus/{job['authorization']['credentials_file']}"]
        assert token.startswith("deploy/secrets/"), token  # kept out of git by its .gitignore
