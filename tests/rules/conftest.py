"""Small sites with rule files of their own, shared by the rules tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from facility.bus import Bus, LocalBus
from facility.site import Site, load_site
from facility.store.ops import OpsStore
from rules.service import RulesService

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

DEVICES = """\
  - {id: pump-1, name: P1, profile: booster_pump, location: {building: B1}, modbus: {port: 1502}}
  - {id: lift-1, profile: elevator, mqtt: {topic: a}}
  - {id: fire-1, profile: fire_panel, location: {building: B1}, modbus: {port: 1502, unit: 2}}
  - {id: light-1, profile: lighting_panel, location: {building: B1}, modbus: {port: 1502, unit: 3}}
  - {id: light-2, profile: lighting_panel, location: {building: B2}, modbus: {port: 1502, unit: 4}}
  - {id: sump-1, profile: sump_pit, location: {building: G}, modbus: {port: 1502, unit: 5}}
  - {id: door-1, profile: access_door, location: {building: B1}, mqtt: {topic: b}}
"""

MakeSite = Callable[[str], Site]


def write_site(folder: Path, rules: str) -> Site:
    """A site in `folder` with the devices above and `rules` as its only rule file."""
    (folder / "rules.yaml").write_text(rules)
    path = folder / "site.yaml"
    path.write_text(f"site: {{id: t}}\nuse_rule_library: false\nrules: [rules.yaml]\ndevices:\n{DEVICES}")
    return load_site(path)


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return write_site(tmp_path, RULES)


@pytest.fixture
def make_site(tmp_path: Path) -> MakeSite:
    return lambda rules: write_site(tmp_path, rules)


@asynccontextmanager
async def rules_running(site: Site, url: str) -> AsyncIterator[tuple[RulesService, Bus, OpsStore]]:
    """The rules service of `site` started on a fresh ops store, stopped (and the store closed) after.
    Its outcome journal is `journal` in the site's folder, so a second service of the site finds it."""
    store = OpsStore(url, site="t")
    await store.start()
    bus = LocalBus()
    service = RulesService(site, bus, store, site.path("journal"))
    await service.start()
    try:
        yield service, bus, store
    finally:
        await service.stop()
        await store.close()
