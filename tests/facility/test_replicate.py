"""`--scale N` repeats the estate on distinct ports and topics, for benchmarks."""

from __future__ import annotations

from pathlib import Path

import pytest

from facility.replica import replicate
from facility.site import load_site


def test_copies_get_their_own_ids_ports_and_topics(repo_root: Path) -> None:
    site = load_site(repo_root / "sites/demo/site.yaml")
    scaled = replicate(site, 3)
    assert len(scaled.devices) == 3 * len(site.devices)
    ids = [d.id for d in scaled.devices]
    assert len(set(ids)) == len(ids) and "pump-b2-1-r3" in ids
    endpoints = {d.modbus.endpoint for d in scaled.devices if d.modbus}
    assert {"127.0.0.1:15020", "127.0.0.1:15120", "127.0.0.1:15220"} <= endpoints
    lift = scaled.device("elevator-b1-1-r2")
    assert lift.mqtt is not None and lift.mqtt.topic == "r2/estate/demo/elevators/elevator-b1-1/state"
    assert lift.mqtt.status == "r2/estate/demo/elevators/elevator-b1-1/status"
    assert scaled.profile_of(lift).type == "elevator"
    assert replicate(site, 1) is site


def test_a_copy_that_would_collide_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(
        "site: {id: t}\ndevices:\n"
        "  - {id: a, profile: booster_pump, modbus: {port: 15000}}\n"
        "  - {id: b, profile: booster_pump, modbus: {port: 15100}}\n"
    )
    with pytest.raises(ValueError, match="port 15100"):
        replicate(load_site(path), 2)
