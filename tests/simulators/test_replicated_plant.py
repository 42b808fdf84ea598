"""The simulators of an estate replicated for a benchmark (`--scale N`) start, every copy's devices
on endpoints of their own: pymodbus refuses two devices with one unit id on one endpoint
("device_id: 1 in multiple SimDevice entries"), and a gateway would read one for both."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from facility.replica import replicate
from facility.site import Site, load_site
from simulators.host import SimulatorHost
from tests.simulators.conftest import read_modbus, read_until


def modbus_only(site: Site) -> Site:
    """The site without its MQTT devices, which would need a broker (and reach one on this machine)."""
    return site.model_copy(update={"devices": [d for d in site.devices if d.modbus]})


def shared_addresses(site: Site) -> list[tuple[str, int, int]]:
    """(host, port, unit) held by more than one device."""
    counts = Counter((d.modbus.host, d.modbus.port, d.modbus.unit) for d in site.devices if d.modbus)
    return [address for address, n in counts.items() if n > 1]


async def test_200_copies_of_the_demo_start_and_answer_each_as_itself(repo_root: Path) -> None:
    site = modbus_only(replicate(load_site(repo_root / "sites/demo/site.yaml"), 200))
    assert len(site.devices) == 200 * 11
    host = SimulatorHost(site, seed=1, any_port=True)
    started = time.monotonic()
    await host.start()
    try:
        assert time.monotonic() - started < 30
        listening = host.site
        assert len({d.modbus.endpoint for d in listening.devices if d.modbus}) == 200 * 5
        assert shared_addresses(listening) == []
        # A fire on copy 200's panel shows on that panel alone: the endpoints reach their own copy.
        await host.inject("fire-panel-r200", "fire")
        await read_until(listening, "fire-panel-r200", lambda v: v["general_fire"] is True)
        for other in ("fire-panel", "fire-panel-r2", "fire-panel-r199"):
            assert (await read_modbus(listening, other))["general_fire"] is False, other
        for k in (2, 60, 61, 100, 200):  # one device on each gateway of a few copies answers
            for device in ("pump-b2-3", "sump-g-2", "meter-main-2", "lighting-garage"):
                assert await read_modbus(listening, f"{device}-r{k}"), f"{device}-r{k}"
    finally:
        await host.stop()


async def test_an_estate_whose_ports_span_more_than_100_replicates_and_starts(tmp_path: Path) -> None:
    """Two gateways 100 ports apart: a copy moved by a fixed 100 ports lands on the estate's other one."""
    path = tmp_path / "site.yaml"
    path.write_text(
        'site: {id: wide}\nbroker: {url: "mqtt://127.0.0.1:1"}\ndevices:\n'
        "  - {id: pump-1, profile: booster_pump, modbus: {port: 15000, unit: 1}}\n"
        "  - {id: pump-2, profile: booster_pump, modbus: {port: 15000, unit: 2}}\n"
        "  - {id: sump-1, profile: sump_pit, modbus: {port: 15100, unit: 1}}\n"
    )
    site = replicate(load_site(path), 60)
    assert shared_addresses(site) == []
    host = SimulatorHost(site, seed=1, any_port=True)
    await host.start()
    try:
        assert shared_addresses(host.site) == []
        for device in ("pump-1", "pump-2-r2", "sump-1-r2", "pump-2-r60", "sump-1-r60"):
            assert await read_modbus(host.site, device), device
    finally:
        await host.stop()
