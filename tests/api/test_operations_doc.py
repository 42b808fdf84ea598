"""The alert rules docs/operations.md promises, in deploy/prometheus/alerts.yml: they load, there is
one for each way the service is known to fail, each names only metrics the document explains, and
promtool accepts them and fires each alert on the series of its failure (`promtool test rules`)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from testsupport.servers import require_binary

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs/operations.md"
RULES = ROOT / "deploy/prometheus/alerts.yml"

# The failures of the issue ("health lies"), each with the alert that must catch it.
FAILURES = {
    "service stopped by SIGTERM or SIGKILL": "FacilityDown",
    "service killed and restarted at once": "FacilityRestarted",
    "broker crash": "FacilityBrokerDown",
    "telemetry store down or hung": "FacilityTelemetryStoreDown",
    "ops store down": "FacilityOpsStoreDown",
    "spool disk filling": "FacilitySpoolFilling",
    "spool disk full": "FacilitySpoolFull",
    "Modbus bus down": "FacilityModbusBusDown",
    "event loop lag": "FacilityEventLoopLag",
    "readings stale": "FacilityReadingsStale",
}


def rules() -> list[dict[str, Any]]:
    (group,) = yaml.safe_load(RULES.read_text())["groups"]
    return list(group["rules"])


def test_one_alert_per_failure_each_on_documented_metrics() -> None:
    found = {r["alert"]: r for r in rules()}
    assert set(FAILURES.values()) <= set(found), set(FAILURES.values()) - set(found)
    documented = set(re.findall(r"^\| `(facility_\w+)`", DOC.read_text(), re.M))
    for name, rule in found.items():
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        used = set(re.findall(r"\bfacility_\w+", rule["expr"]))
        assert used <= documented, (name, used - documented)


# Input series for `promtool test rules`, one failure (or a few unrelated ones) a test, and exactly
# the alerts that must then be firing: none more, so that a rule that fires on everything fails too.
FIRING = 'count by (alertname) (ALERTS{alertstate="firing"})'
TESTS = f"""
rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - {{series: 'up{{job="facility", instance="a:8000"}}', values: '1 0 0 0'}}
      - {{series: 'process_start_time_seconds{{job="facility", instance="a:8000"}}', values: '100 100 160 160'}}
      - {{series: 'facility_part_up{{part="broker b:1883 (gateway)", kind="broker"}}', values: '1 0 0 0'}}
      - {{series: 'facility_part_up{{part="telemetry store", kind="telemetry_store"}}', values: '1 0 0 0'}}
      - {{series: 'facility_part_up{{part="ops store", kind="ops_store"}}', values: '1 0 0 0'}}
      - {{series: 'facility_part_up{{part="modbus 10.0.0.5:502", kind="modbus_bus"}}', values: '1 0 0 0'}}
      - {{series: 'facility_part_up{{part="spool", kind="spool"}}', values: '1 1 1 1'}}
      - {{series: 'facility_readings_dropped_total', values: '0 0 5 9'}}
      - {{series: 'facility_event_loop_lag_seconds', values: '0 2 2 2'}}
    promql_expr_test:
      - expr: '{FIRING}'
        eval_time: 3m
        exp_samples:
          - {{labels: '{{alertname="FacilityDown"}}', value: 1}}
          - {{labels: '{{alertname="FacilityRestarted"}}', value: 1}}
          - {{labels: '{{alertname="FacilityBrokerDown"}}', value: 1}}
          - {{labels: '{{alertname="FacilityTelemetryStoreDown"}}', value: 1}}
          - {{labels: '{{alertname="FacilityOpsStoreDown"}}', value: 1}}
          - {{labels: '{{alertname="FacilityModbusBusDown"}}', value: 1}}
          - {{labels: '{{alertname="FacilityEventLoopLag"}}', value: 1}}
          - {{labels: '{{alertname="FacilitySpoolFull"}}', value: 1}}
  - interval: 1m
    input_series:  # filling at 100 bytes a minute: 5 % of its limit now, full in under 4 hours
      - {{series: 'facility_spool_bytes', values: '100+100x40'}}
      - {{series: 'facility_spool_limit_bytes', values: '25000x40'}}
    promql_expr_test:
      - expr: '{FIRING}'
        eval_time: 40m
        exp_samples: [{{labels: '{{alertname="FacilitySpoolFilling"}}', value: 1}}]
  - interval: 1m
    input_series:  # hung: it says up, but has taken nothing for minutes while readings arrive
      - {{series: 'facility_part_up{{part="telemetry store", kind="telemetry_store"}}', values: '1x20'}}
      - series: 'facility_part_last_success_timestamp_seconds{{part="telemetry store", kind="telemetry_store"}}'
        values: '0x20'
      - {{series: 'facility_readings_received_total', values: '0+600x20'}}
    promql_expr_test:
      - expr: '{FIRING}'
        eval_time: 4m
        exp_samples: []
      - expr: '{FIRING}'
        eval_time: 15m
        exp_samples: [{{labels: '{{alertname="FacilityTelemetryStoreDown"}}', value: 1}}]
  - interval: 1m
    input_series:  # readings stop arriving
      - {{series: 'facility_readings_received_total', values: '0+600x5 3000x20'}}
    promql_expr_test:
      - expr: '{FIRING}'
        eval_time: 4m
        exp_samples: []
      - expr: '{FIRING}'
        eval_time: 25m
        exp_samples: [{{labels: '{{alertname="FacilityReadingsStale"}}', value: 1}}]
"""


def test_promtool_accepts_the_rules_and_each_fires_on_its_failure(tmp_path: Path) -> None:
    promtool = require_binary("promtool", "prometheus")
    (tmp_path / "rules.yml").write_text(RULES.read_text())
    (tmp_path / "tests.yml").write_text(TESTS)
    for command in (["check", "rules", "rules.yml"], ["test", "rules", "tests.yml"]):
        done = subprocess.run([promtool, *command], cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
