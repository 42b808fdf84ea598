"""The fire alarm names the zones in fire, as the panel's display does (issue #14).

The library's fire rule runs on the simulated panel, read over Modbus TCP by the real gateway,
with the whole system and the real broker: nothing is mocked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from typer.testing import CliRunner

from facility.cli import app
from facility.netutil import free_port
from tests.servers import Mosquitto
from tests.system import TOKEN, EventStream, alarm, running_system, write_site

DEADLINE_S = 30.0  # generous: polling and the rule engine on a loaded 2-core machine
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PANEL = "fire-1"


def panel_site(folder: Path, broker_url: str) -> Path:
    """The test estate with a fire panel in building B3, polled every 200 ms."""
    panel = (
        f"  - id: {PANEL}\n"
        "    name: FACP-1\n"
        "    profile: fire_panel\n"
        "    location: {building: B3}\n"
        f"    modbus: {{host: 127.0.0.1, port: {free_port()}, unit: 1, interval: 200ms, timeout: 500ms}}\n"
    )
    return write_site(folder, broker_url, free_port(), extra=panel)


async def raised_fire_alarm(http: httpx.AsyncClient, events: EventStream, after: int) -> tuple[dict[str, Any], int]:
    """The fire alarm raised after event `after`, as the desk lists it, and its event's id."""
    event = await events.wait_for(alarm("fire-alarm", "unacknowledged"), DEADLINE_S, after)
    (listed,) = [a for a in (await http.get("/api/v1/alarms")).json()["items"] if a["id"] == event.data["id"]]
    return listed, event.id


async def test_the_fire_alarm_names_every_zone_in_fire_in_both_languages(tmp_path: Path, mosquitto: Mosquitto) -> None:
    site_path = panel_site(tmp_path, mosquitto.url)
    async with (
        running_system(site_path, tmp_path / "data") as (url, _site),
        EventStream(url) as events,
        httpx.AsyncClient(base_url=url, headers=AUTH) as http,
    ):
        response = await http.post("/sim/faults", json={"device": PANEL, "fault": "fire", "params": {"zone": 3}})
        assert response.status_code == 201, response.text
        one, seen = await raised_fire_alarm(http, events, 0)
        assert one["title"] == {"zh": "B3 火警：3号防区", "en": "B3 fire: Zone 3"}
        assert one["message"] == {
            "zh": "FACP-1报火警：3号防区。立即到场确认",
            "en": "FACP-1 reports fire in Zone 3. Confirm on site now",
        }

        assert (await http.post(f"/api/v1/alarms/{one['id']}/ack")).status_code == 200
        assert (await http.delete(f"/sim/faults/{PANEL}")).status_code == 200  # the panel is reset
        seen = (await events.wait_for(alarm("fire-alarm", "normal"), DEADLINE_S, seen)).id

        # Two zones go into fire while the panel does not answer, so that the first reading after
        # it answers again carries both: the alarm is raised with the zones in fire at that moment.
        for fault in ({"fault": "comm_loss"}, {"fault": "fire", "params": {"zone": 5}}, {"fault": "fire"}):
            response = await http.post("/sim/faults", json={"device": PANEL, **fault})
            assert response.status_code == 201, response.text
        assert (await http.delete(f"/sim/faults/{PANEL}/comm_loss")).status_code == 200
        two, _ = await raised_fire_alarm(http, events, seen)
    assert two["title"] == {"zh": "B3 火警：1号防区、5号防区", "en": "B3 fire: Zone 1, Zone 5"}
    assert two["message"] == {
        "zh": "FACP-1报火警：1号防区、5号防区。立即到场确认",
        "en": "FACP-1 reports fire in Zone 1, Zone 5. Confirm on site now",
    }


def test_rules_check_refuses_a_value_no_enum_point_takes(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(
        "site: {id: plant}\n"
        "use_rule_library: false\n"
        "devices:\n"
        "  - {id: fire-1, profile: fire_panel, modbus: {port: 1502}}\n"
    )
    rules = tmp_path / "fire.yaml"
    rules.write_text(
        "rules:\n"
        "  - id: zones\n"
        "    title:\n"
        '      zh: "火警：{points_in:fire}"\n'
        '      en: "fire in {points_in:nonsense}"\n'  # line 5: no zone is ever `nonsense`
        "    devices: {types: [fire_panel]}\n"
        "    when: general_fire\n"
        "    priority: emergency\n"
    )
    result = CliRunner().invoke(app, ["rules", "check", str(rules), "--site", str(site)])
    assert result.exit_code == 1
    values = "fault, fire, isolated, normal, supervisory"
    assert result.stdout.splitlines() == [
        f"{rules}:5: rules[0].title.en: {{points_in:nonsense}} names no value of an enum point "
        f"of this rule's devices (values: {values})"
    ]
    rules.write_text(rules.read_text().replace("nonsense", "fire"))
    result = CliRunner().invoke(app, ["rules", "check", str(rules), "--site", str(site)])
    assert result.exit_code == 0, result.stdout
