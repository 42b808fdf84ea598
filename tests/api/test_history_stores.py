"""A point's history through the API when the telemetry store cannot give it: a 502 that names the
store and says why, never a 500, and the OpenAPI document says so. Real system (simulators,
Mosquitto, gateway, rules, HTTP) on a site whose telemetry store is VictoriaMetrics, or a server
that answers what InfluxDB never does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from facility.netutil import free_port
from testsupport.influx_servers import Unreadable, VictoriaMetrics
from testsupport.servers import Mosquitto
from testsupport.system import TOKEN, running_system, write_site

AUTH = {"Authorization": f"Bearer {TOKEN}"}
HISTORY = "/api/v1/devices/{device_id}/points/{point}/history"
A_DAY: dict[str, str] = {}  # the default range: bucketed
A_MINUTE = {"since": "2026-01-01T00:00:00Z", "until": "2026-01-01T00:01:00Z"}  # raw


async def ask_history(
    tmp_path: Path, broker_url: str, store_url: str, ranges: list[dict[str, str]]
) -> tuple[list[httpx.Response], dict[str, Any]]:
    """Answers to the history of a polled point over each range, on a system whose telemetry
    store is InfluxDB at `store_url`, and the answers the route documents."""
    site_path = write_site(tmp_path, broker_url, free_port())
    telemetry = f'telemetry: {{url: "{store_url}", token_env: null}}'
    site_path.write_text(site_path.read_text().replace("telemetry: var/telemetry.db", telemetry))
    async with running_system(site_path, tmp_path / "data") as (url, _site):
        async with httpx.AsyncClient(base_url=url, headers=AUTH) as http:
            path = HISTORY.format(device_id="pump-1", point="outlet_pressure")
            answers = [await http.get(path, params=params) for params in ranges]
            documented = (await http.get("/api/openapi.json")).json()["paths"][HISTORY]["get"]
    return answers, documented["responses"]


async def test_history_from_victoria_metrics_is_a_502_naming_it(tmp_path: Path, mosquitto: Mosquitto) -> None:
    (tmp_path / "vm").mkdir()
    with VictoriaMetrics(tmp_path / "vm") as vm:
        answers, _ = await ask_history(tmp_path, mosquitto.url, vm.url, [A_DAY, A_MINUTE])
    for answer in answers:
        assert answer.status_code == 502, answer.text
        detail = answer.json()["detail"]
        assert detail.startswith(f"VictoriaMetrics at {vm.url} cannot give history: "), detail
        assert "runs no InfluxQL" in detail


async def test_an_unreadable_answer_is_a_502_naming_the_store_and_the_route_documents_it(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    with Unreadable(b"<html><body><h1>Welcome to nginx!</h1></body></html>") as server:
        answers, responses = await ask_history(tmp_path, mosquitto.url, server.url, [A_DAY, A_MINUTE])
    assert len(server.queries) == 2  # each request asked the store
    for answer in answers:
        assert answer.status_code == 502, answer.text
        assert list(answer.json()) == ["detail"]  # the API's one error shape
        detail = answer.json()["detail"]
        assert detail.startswith(f"InfluxDB at {server.url} cannot give history: "), detail
        assert "not the InfluxQL answer asked for" in detail and "Welcome to nginx" in detail
    assert responses["502"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
