"""`facility sim run` and `facility run` as separate processes joined by a real broker.

This is how a site runs once simulators give way to real plant: the gateway, rules and API in one
process, the devices elsewhere.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from facility.netutil import free_port
from testsupport.processes import TOKEN, start_facility, stop_facility
from testsupport.servers import Mosquitto, http_json, poll, wait_listening
from testsupport.system import write_site


def test_gateway_and_simulators_in_separate_processes(tmp_path: Path, mosquitto: Mosquitto) -> None:
    site = write_site(tmp_path, mosquitto.url, free_port())
    sim_port, api_port = free_port(), free_port()
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    sims = start_facility(
        ["sim", "run", str(site), "--port", str(sim_port)], tmp_path, {"FACILITY_TOKEN_FILE": str(token_file)}
    )
    service = None
    try:
        wait_listening(sim_port, timeout=60, proc=sims)
        # The simulators alone stand behind the same edge as the estate's API.
        stranger = httpx.post(f"http://127.0.0.1:{sim_port}/sim/faults", content=b"{}", timeout=10)
        assert stranger.status_code == 401
        assert "server" not in stranger.headers and stranger.headers["x-content-type-options"] == "nosniff"
        service = start_facility(["run", "-c", str(site), "--port", str(api_port)], tmp_path, {"FACILITY_TOKEN": TOKEN})
        wait_listening(api_port, timeout=60, proc=service)
        http_json(f"http://127.0.0.1:{sim_port}/sim/faults", "POST", {"device": "lift-1", "fault": "entrapment"}, TOKEN)
        alarms = poll(
            lambda: http_json(f"http://127.0.0.1:{api_port}/api/v1/alarms", token=TOKEN)["items"], bool, timeout=30
        )
        assert [(a["rule"], a["device"]) for a in alarms] == [("elevator-entrapment", "lift-1")]
    finally:
        results = [stop_facility(p) for p in (service, sims) if p is not None]
    for code, output in results:
        assert code == 0, output
        assert "Traceback" not in output, output
        assert TOKEN not in output  # a token given to a process is in none of its output
    assert (tmp_path / "var/ops.db").exists()  # stores resolved against the site file's folder
