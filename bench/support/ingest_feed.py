"""The feed bench/ingest.py drains: eight flow meters, the messages their publishers send and the
topics they send them on, and the site our pipeline runs them in. Kept apart from the consumers
that are measured, so that every consumer is handed the same feed.
"""

from __future__ import annotations

import time
from pathlib import Path

DEVICES = 8
PROFILE = """type: flow_meter
timestamp: ts
points:
  value: {unit: m3/h, json: value}
"""
RULE = """rules:
  - id: high-flow
    title: {zh: "{device_name} 流量高", en: "{device_name}: high flow"}
    devices: {types: [flow_meter]}
    when: value > 990
    priority: low
"""


def messages(n: int) -> str:
    """n documents of about 80 bytes, one per line, for `mosquitto_pub -l`."""
    now_ms = int(time.time() * 1000)
    return "".join(
        f'{{"value":{(i * 7919) % 1000 + 0.125:.3f},"ts":{now_ms + i},"seq":{i},"unit":"m3/h","ok":true}}\n'
        for i in range(n)
    )


def topic(run: str, device: int) -> str:
    return f"bench/{run}/dev-{device}/state"


def pipeline_site(folder: Path, run: str, qos: int, broker_url: str) -> Path:
    """The site file of a pipeline run in `folder` (made here), with its profile and its one rule:
    the flow meters on the run's own topics at `qos`."""
    (folder / "profiles").mkdir(parents=True)
    (folder / "profiles/flow_meter.yaml").write_text(PROFILE)
    (folder / "rules.yaml").write_text(RULE)
    # Interval 0: a backlog drains device by device as the publishers happened to finish, and
    # the gateway's health check would mark a device it has drained stale (readings that are
    # not the feed's). Health still sees every reading; it only judges no silence.
    devices = "".join(
        f"  - {{id: flow-{d}, profile: flow_meter, mqtt: {{topic: {topic(run, d)}, qos: {qos}, interval: 0s}}}}\n"
        for d in range(DEVICES)
    )
    (folder / "site.yaml").write_text(
        f"site: {{id: bench-{run}}}\nbroker: {{url: '{broker_url}'}}\nprofiles: [profiles/]\n"
        f"use_rule_library: false\nrules: [rules.yaml]\ndevices:\n{devices}"
    )
    return folder / "site.yaml"
