"""`--scale N` repeats the estate on distinct ports and topics, for benchmarks."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import pytest

from facility.replica import MAX_PORT, replicate
from facility.site import Site, load_site


def copy_of(device_id: str) -> int:
    """k for a device of copy k (id suffixed `-rk`), 1 for the estate's own."""
    _, sep, tail = device_id.rpartition("-r")
    return int(tail) if sep and tail.isdigit() else 1


def assert_endpoints_apart(site: Site) -> None:
    """Every Modbus TCP device has a (host, port, unit) of its own, and each endpoint (and each
    port) belongs to one copy only."""
    tcp = [d for d in site.devices if d.modbus and not d.modbus.serial]
    addresses = Counter((d.modbus.host, d.modbus.port, d.modbus.unit) for d in tcp if d.modbus)
    assert [a for a, n in addresses.items() if n > 1] == []
    copies_of_port: dict[int, set[int]] = defaultdict(set)
    for d in tcp:
        assert d.modbus is not None
        copies_of_port[d.modbus.port].add(copy_of(d.id))
    assert {p: c for p, c in copies_of_port.items() if len(c) > 1} == {}
    assert all(d.modbus.port <= MAX_PORT for d in tcp if d.modbus)


def test_copies_get_their_own_ids_ports_and_topics(repo_root: Path) -> None:
    site = load_site(repo_root / "sites/demo/site.yaml")
    scaled = replicate(site, 3)
    assert len(scaled.devices) == 3 * len(site.devices)
    ids = [d.id for d in scaled.devices]
    assert len(set(ids)) == len(ids) and "pump-b2-1-r3" in ids
    # The demo's five endpoints (15020-15024) again at 15025-15029 for copy 2, 15030-15034 for copy 3,
    # the devices of one gateway still together and with their unit ids.
    pumps = [scaled.device(f"pump-b2-{i}-r2").modbus for i in (1, 2, 3)]
    assert [(b.host, b.port, b.unit) for b in pumps if b] == [("127.0.0.1", 15025, u) for u in (1, 2, 3)]
    endpoints = {d.modbus.endpoint for d in scaled.devices if d.modbus}
    assert endpoints == {f"127.0.0.1:{p}" for p in range(15020, 15035)}
    lift = scaled.device("elevator-b1-1-r2")
    assert lift.mqtt is not None and lift.mqtt.topic == "r2/estate/demo/elevators/elevator-b1-1/state"
    assert lift.mqtt.status == "r2/estate/demo/elevators/elevator-b1-1/status"
    assert scaled.profile_of(lift).type == "elevator"
    assert replicate(site, 1) is site


def test_200_copies_of_the_demo_share_no_endpoint(repo_root: Path) -> None:
    site = load_site(repo_root / "sites/demo/site.yaml")
    scaled = replicate(site, 200)
    assert len(scaled.devices) == 200 * len(site.devices)
    assert_endpoints_apart(scaled)
    assert len({d.modbus.endpoint for d in scaled.devices if d.modbus}) == 200 * 5
    # Copy k is the same whatever the number of copies: `sim run --scale` and `run --scale` agree.
    assert replicate(site, 60).devices == scaled.devices[: 60 * len(site.devices)]


def test_the_benchmark_fleet_fits_though_its_ports_span_more_than_100(tmp_path: Path) -> None:
    """200 estates of 300 devices, 2 to a gateway: 150 endpoints on ports 15000-15149. A fixed
    offset of 100 ports a copy put copy 2's first gateway on the estate's 15100."""
    path = tmp_path / "site.yaml"
    lines = [
        f"  - {{id: p{i}, profile: booster_pump, modbus: {{port: {15000 + i // 2}, unit: {1 + i % 2}}}}}\n"
        for i in range(300)
    ]
    path.write_text("site: {id: fleet}\ndevices:\n" + "".join(lines))
    scaled = replicate(load_site(path), 200)
    assert len(scaled.devices) == 200 * 300
    assert_endpoints_apart(scaled)
    assert scaled.device("p0-r2").modbus == scaled.device("p1-r2").modbus.model_copy(update={"unit": 1})  # type: ignore[union-attr]


def test_serial_devices_are_not_repeated(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(
        "site: {id: t}\ndevices:\n"
        "  - {id: a, profile: booster_pump, modbus: {port: 15000}}\n"
        "  - {id: s, profile: booster_pump, modbus: {serial: /dev/ttyUSB0}}\n"
    )
    scaled = replicate(load_site(path), 3)
    assert [d.id for d in scaled.devices] == ["a", "s", "a-r2", "a-r3"]


def test_copies_beyond_the_last_port_are_refused_naming_copy_and_device(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(
        "site: {id: t}\ndevices:\n"
        "  - {id: a, profile: booster_pump, modbus: {port: 65533}}\n"
        "  - {id: b, profile: booster_pump, modbus: {port: 65534}}\n"
    )
    site = load_site(path)
    assert replicate(site, 1) is site
    with pytest.raises(ValueError) as refused:
        replicate(site, 2)  # copy 2 gets 65535 for a, and nothing is left for b
    message = str(refused.value)
    assert message.startswith("copy 2 of 2 has no Modbus TCP port left for device 'b'")
    assert "65535" in message and "at most 1 copies" in message


def test_a_refusal_says_how_many_copies_fit_and_that_many_do(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(
        "site: {id: t}\ndevices:\n"
        "  - {id: a, profile: booster_pump, modbus: {port: 65500, unit: 1}}\n"
        "  - {id: b, profile: booster_pump, modbus: {port: 65500, unit: 2}}\n"
        "  - {id: c, profile: sump_pit, modbus: {port: 65501}}\n"
    )
    site = load_site(path)
    fit = 1 + (MAX_PORT - 65501) // 2  # 2 endpoints a copy, from 65502 on
    scaled = replicate(site, fit)
    assert_endpoints_apart(scaled)
    assert scaled.device(f"c-r{fit}").modbus.port == MAX_PORT  # type: ignore[union-attr]
    with pytest.raises(ValueError, match=rf"^copy {fit + 1} of {fit + 1} .* device 'a'.* at most {fit} copies"):
        replicate(site, fit + 1)
