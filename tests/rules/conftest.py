"""A small site with one rule file, shared by the rules tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from facility.site import Site, load_site

RULES = """\
rules:
  - id: low-pressure
    title: {zh: "{device_name} 压力低", en: "{device_name}: low pressure {outlet_pressure:.2f}"}
    devices: {types: [booster_pump]}
    when: running and outlet_pressure < 0.25
    for: 5s
    clear: outlet_pressure >= 0.30
    priority: high
"""


@pytest.fixture
def site(tmp_path: Path) -> Site:
    (tmp_path / "rules.yaml").write_text(RULES)
    path = tmp_path / "site.yaml"
    path.write_text(
        "site: {id: t}\nuse_rule_library: false\nrules: [rules.yaml]\ndevices:\n"
        "  - {id: pump-1, name: P1, profile: booster_pump, modbus: {port: 1502}}\n"
        "  - {id: lift-1, profile: elevator, mqtt: {topic: a}}\n"
    )
    return load_site(path)
