"""Scenarios: the shipped ones fit the demo estate, and a timeline plays in order at its speed."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from facility.netutil import free_port
from facility.site import load_site
from facility.yamlfile import ConfigError
from simulators.host import SimulatorHost
from simulators.scenarios import ScenarioPlayer, check_against, load_library, load_scenario, parse_scenario
from tests.simulators.conftest import read_until, simulated, until
from testsupport.servers import Mosquitto
from testsupport.system import TOKEN, running_system, write_site

SHIPPED = {"fire-at-night", "basement-flooding", "mains-failure", "elevator-entrapment", "pump-degrading-week"}


def test_shipped_scenarios_fit_the_demo_estate(repo_root: Path) -> None:
    site = load_site(repo_root / "sites/demo/site.yaml")
    library = load_library([site.path(p) for p in site.scenarios])
    assert set(library) == SHIPPED
    host = SimulatorHost(site)
    for scenario in library.values():
        check_against(scenario, host, scenario.name)  # every device and fault exists
        assert scenario.title["zh"] and scenario.title["en"]


def test_a_bad_scenario_file_names_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nsteps:\n  - {at: soon, inject: {device: pump-1, fault: slow}}\n")
    with pytest.raises(ConfigError) as caught:
        load_scenario(path)
    (problem,) = caught.value.problems
    assert (problem.line, problem.field) == (3, "steps[0].at")
    with pytest.raises(ConfigError, match="either injects or clears"):
        parse_scenario("name: x\nsteps:\n  - {at: 1s}\n")


async def test_timeline_plays_in_order_at_its_speed(tmp_path: Path) -> None:
    port = free_port()
    devices = (
        f"  - {{id: pump-1, profile: booster_pump, modbus: {{port: {port}}}}}\n"
        f"  - {{id: pump-2, profile: booster_pump, modbus: {{port: {port}, unit: 2}}}}\n"
    )
    async with simulated(tmp_path, devices) as (site, host):
        player = ScenarioPlayer(host, {})
        scenario = parse_scenario(
            "name: trip-and-recover\nspeed: 60\nclock: '03:00'\nsteps:\n"
            "  - {at: 1m, inject: {device: pump-1, fault: overload_trip}}\n"
            "  - {at: 0s, inject: {device: pump-1, fault: flow_meter_fault}}\n"
            "  - {at: 3m, clear: {device: pump-1}}\n"
        )
        start = time.monotonic()
        run = player.start(scenario)
        at_three = 3 * 3600 - 5 < host.time_of_day("pump-1") < 3 * 3600 + 5  # its device sees 03:00 ...
        assert at_three and abs(host.time_of_day("pump-2") - host.time_of_day()) < 5  # ... no other does
        await read_until(site, "pump-1", lambda v: v["tripped"] and v["flow"] is None)
        await until(lambda: run.state == "finished", timeout=10)
        elapsed = time.monotonic() - start
        assert 2.9 < elapsed < 6  # three scenario minutes at 60x
        assert run.done == [
            "0s inject flow_meter_fault on pump-1",
            "60s inject overload_trip on pump-1",
            "180s clear all on pump-1",
        ]
        values = await read_until(site, "pump-1", lambda v: v["running"])
        assert values["flow"] is not None
        assert host.model("pump-1").speed == 1.0  # model time is back to real time
        assert abs(host.time_of_day("pump-1") - host.time_of_day()) < 5  # and back to the plant's time


async def test_scenarios_over_the_control_api(tmp_path: Path, mosquitto: Mosquitto) -> None:
    site_path = write_site(tmp_path, mosquitto.url, free_port())
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with running_system(site_path, tmp_path / "data") as (url, _site):
        async with httpx.AsyncClient(base_url=url, headers=headers) as http:
            assert (await http.post("/sim/scenarios", json={"name": "nope"})).status_code == 404
            both = await http.post("/sim/scenarios", json={"name": "a", "definition": "b"})
            assert both.status_code == 422
            bad = await http.post("/sim/scenarios", json={"definition": "name: x\nsteps: []\n"})
            assert bad.status_code == 422 and "steps" in bad.text
            unknown = "name: x\nsteps:\n  - {at: 0s, inject: {device: pump-9, fault: slow}}\n"
            response = await http.post("/sim/scenarios", json={"definition": unknown})
            assert response.status_code == 422 and "pump-9" in response.text

            play = "name: lift\nsteps:\n  - {at: 0s, inject: {device: lift-1, fault: entrapment}}\n"
            started = await http.post("/sim/scenarios", json={"definition": play, "speed": 2})
            assert started.status_code == 201, started.text
            run_id = started.json()["id"]

            async def finished() -> bool:
                return (await http.get(f"/sim/scenarios/{run_id}")).json()["state"] == "finished"

            await until(finished)
            devices = {d["id"]: d for d in (await http.get("/sim/devices")).json()}
            assert "entrapment" in devices["lift-1"]["faults"]
            listing = (await http.get("/sim/scenarios")).json()
            assert [r["id"] for r in listing["runs"]] == [run_id]
            assert (await http.get("/sim/scenarios/999")).status_code == 404
