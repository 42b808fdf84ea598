"""Rule engine: readings per second through Engine.handle, in-process, with 500 rules over 2,000 devices.

A temporary site holds 2,000 devices of one MQTT profile (eight numbers, a state, two bools) in 20
groups of 100 by tag, spread over 10 buildings, and 500 rules, 25 per group, mixing every kind of
condition: thresholds with `for`, states, `unless`, rate(), count(), offline(), and suppression by
a rule active in the building. Each device delivers a snapshot of all its points every second of
simulated time; the engine gets them in batches of 100 devices, as the bus delivers them. Prints
one JSON object on a line of its own.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from facility.model import Quality, Reading
from facility.site import load_site
from rules.engine import Change, Engine
from rules.ruleset import load_rules

DEVICES = 2000
GROUPS = 20
RULES_PER_GROUP = 25
BUILDINGS = 10
BATCH_DEVICES = 100
NUMBERS = 8
S = 1_000_000_000

PROFILE = (
    "type: bench_unit\ntimestamp: ts\npoints:\n"
    + "".join(f"  p{i}: {{json: p{i}}}\n" for i in range(NUMBERS))
    + "  state: {type: string, json: state}\n  running: {type: bool, json: running}\n"
    + "  fault: {type: bool, json: fault}\n"
)


def rule(group: int, k: int) -> str:
    """The k-th rule of a group: every fifth rule is of one kind."""
    a, t = k % NUMBERS, 90 + k % 9
    when, extra = {
        0: (f"p{a} > {t}", "    for: 30s\n"),
        1: (f"p{a} < {100 - t}", "    unless: not running\n"),
        2: (
            f'state in ["fault", "alarm"] and p{a} > {t - 20}',
            f"    suppressed_by: {{rule: g{group}-0, scope: building}}\n",
        ),
        3: (f"rate(p{a}, 5m) > {k % 7 + 1}", ""),
        4: ("count(fault, 1h) >= 3" if k % 2 else 'count(state == "fault", 10m) >= 2', ""),
    }[k % 5]
    if k == RULES_PER_GROUP - 1:
        when = "offline()"
    return (
        f"  - id: g{group}-{k}\n"
        f'    title: {{zh: "{{device_name}} 规则 {k}", en: "{{device_name}}: rule {k}"}}\n'
        f"    devices: {{tags: [g{group}]}}\n    when: {when}\n{extra}    priority: medium\n"
    )


def build_site(folder: Path) -> Path:
    (folder / "profiles").mkdir()
    (folder / "profiles/bench_unit.yaml").write_text(PROFILE)
    rules = "".join(rule(g, k) for g in range(GROUPS) for k in range(RULES_PER_GROUP))
    (folder / "rules.yaml").write_text(f"rules:\n{rules}")
    devices = "".join(
        f"  - {{id: u-{d}, profile: bench_unit, tags: [g{d % GROUPS}], location: {{building: b{d % BUILDINGS}}}, "
        f"mqtt: {{topic: bench/u-{d}}}}}\n"
        for d in range(DEVICES)
    )
    (folder / "site.yaml").write_text(
        f"site: {{id: bench}}\nprofiles: [profiles/]\nuse_rule_library: false\nrules: [rules.yaml]\ndevices:\n{devices}"
    )
    return folder / "site.yaml"


def snapshot(d: int, second: int) -> list[Reading]:
    """All points of device d at a second; values wander so that some rules raise and clear."""
    ts = second * S
    device = f"u-{d}"
    out = [
        Reading(device, f"p{i}", float((d * 7 + second * (i + 1) * 3) % 100), Quality.GOOD, ts) for i in range(NUMBERS)
    ]
    phase = (d + second) % 50
    out.append(Reading(device, "state", "fault" if phase < 3 else "normal", Quality.GOOD, ts))
    out.append(Reading(device, "running", phase % 10 != 0, Quality.GOOD, ts))
    out.append(Reading(device, "fault", phase % 7 == 0, Quality.GOOD, ts))
    return out


def main(seconds: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        site = load_site(build_site(Path(tmp)))
        started = time.perf_counter()
        rules = load_rules(site)
        load_s = time.perf_counter() - started
    changes: list[Change] = []
    engine = Engine(rules, changes.append)
    batches = [
        [r for d in range(first, first + BATCH_DEVICES) for r in snapshot(d, second)]
        for second in range(seconds)
        for first in range(0, DEVICES, BATCH_DEVICES)
    ]
    total = sum(len(b) for b in batches)
    started = time.perf_counter()
    for batch in batches:
        engine.handle(batch)
    elapsed = time.perf_counter() - started
    return {
        "benchmark": "rules",
        "rules": len(rules),
        "devices": DEVICES,
        "conditions": sum(len(r.devices) for r in rules),
        "readings": total,
        "rule_readings_per_s": round(total / elapsed),
        "changes": len(changes),
        "suppressed_changes": sum(c.suppressed for c in changes),
        "load_rules_s": round(load_s, 2),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", type=int, default=30, help="seconds of simulated time (a snapshot per device each)"
    )
    args = parser.parse_args()
    print(json.dumps(main(args.seconds)), flush=True)
